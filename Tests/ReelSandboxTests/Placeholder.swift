import Testing

@Test func reelsandboxBuilds() {}
