import Testing

@Test func reeldaemonBuilds() {}
