import Testing

@Test func reelspoolBuilds() {}
