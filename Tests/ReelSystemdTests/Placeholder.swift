import Testing

@Test func reelsystemdBuilds() {}
