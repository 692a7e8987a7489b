import Testing

@Test func reeloutputBuilds() {}
