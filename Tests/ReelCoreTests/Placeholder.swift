import Testing

@Test func reelcoreBuilds() {}
