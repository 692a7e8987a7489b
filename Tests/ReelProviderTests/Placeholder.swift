import Testing

@Test func reelproviderBuilds() {}
