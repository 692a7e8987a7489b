import Testing

@Test func reelstoreBuilds() {}
