import Testing

@Test func reelcontrolBuilds() {}
