// swift-tools-version: 6.2
// Reel: a render-queue daemon for Wan 2.6 reference-to-video batches.
//
// Dependency direction: ReelCore (pure) <- adapters (one per outside system) <- ReelDaemon <- executables.
// ReelProtocol (wire types) depends on nothing, so `reelctl` never links SQLite or NIO.
import PackageDescription

let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
let log = Target.Dependency.product(name: "Logging", package: "swift-log")
let args = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let lifecycle: [Target.Dependency] = [
    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
]

let package = Package(
    name: "reel",
    products: [
        .executable(name: "reeld", targets: ["reeld"]),
        .executable(name: "reelctl", targets: ["reelctl"]),
        .executable(name: "reel-sandbox", targets: ["reel-sandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
    ],
    targets: [
        // C libraries, each wrapped by exactly one Swift file (LibCurl.swift, LibSystemd.swift).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // Pure core: domain types, manifest validation, job state machine, scheduler. No I/O.
        .target(name: "ReelCore", swiftSettings: settings),
        // System calls in one place: EINTR retries, errno as `PosixError`, the atomic write, the blocking-work
        // threads. Depends on nothing of Reel's, so every adapter may use it.
        .target(name: "ReelPosix", swiftSettings: settings),
        // Control-plane wire types shared by the daemon and reelctl.
        .target(name: "ReelProtocol", dependencies: ["ReelCore"], swiftSettings: settings),

        // Adapters, one per outside system.
        .target(name: "ReelCurl", dependencies: ["CCurl", "ReelPosix", crypto], swiftSettings: settings),
        .target(name: "ReelStore", dependencies: ["ReelCore", .product(name: "GRDB", package: "GRDB.swift"), crypto],
                swiftSettings: settings),
        .target(name: "ReelProvider", dependencies: ["ReelCore", "ReelCurl", log], swiftSettings: settings),
        .target(name: "ReelSystemd", dependencies: ["CSystemd", "ReelPosix", log], swiftSettings: settings),
        .target(name: "ReelSpool", dependencies: ["ReelCore", "ReelPosix", crypto], swiftSettings: settings),
        .target(name: "ReelMedia", dependencies: ["ReelCore", "ReelPosix"], swiftSettings: settings),
        .target(name: "ReelOutput", dependencies: ["ReelCore", "ReelMedia", "ReelPosix", crypto], swiftSettings: settings),
        .target(name: "ReelHTTPServer", dependencies: ["ReelPosix", nioCore, nioPosix, nioHTTP1, log],
                swiftSettings: settings),
        // The OpenAPI document is compiled in from its one source (docs/openapi.json links to it).
        .target(name: "ReelControl", dependencies: ["ReelCore", "ReelProtocol", "ReelHTTPServer", log, nioCore, nioHTTP1],
                resources: [.embedInCode("openapi.json")], swiftSettings: settings),
        .target(name: "ReelSandbox", dependencies: ["ReelCore", "ReelHTTPServer", "ReelMedia", "ReelPosix", log, nioCore, nioHTTP1],
                swiftSettings: settings),

        // reel.toml, read by reeld and (for pricing in `estimate`) by reelctl.
        .target(name: "ReelConfig", dependencies: ["ReelCore", .product(name: "TOMLKit", package: "TOMLKit")],
                swiftSettings: settings),

        // Composition: the Services run by one ServiceGroup.
        .target(name: "ReelDaemon", dependencies: [
            "ReelCore", "ReelProtocol", "ReelStore", "ReelProvider", "ReelSystemd", "ReelSpool", "ReelOutput",
            "ReelControl", "ReelHTTPServer", "ReelMedia", "ReelPosix", "ReelConfig", "ReelCurl", log, crypto,
        ] + lifecycle, swiftSettings: settings),

        // Thin executables.
        .executableTarget(name: "reeld", dependencies: ["ReelCore", "ReelConfig", "ReelDaemon", "ReelSystemd", args, log],
                          swiftSettings: settings),
        .executableTarget(name: "reelctl", dependencies: ["ReelCore", "ReelProtocol", "ReelCurl", "ReelConfig", "ReelMedia",
                                                          "ReelSpool", args],
                          swiftSettings: settings),
        .executableTarget(name: "reel-sandbox", dependencies: ["ReelSandbox", "ReelHTTPServer", args, log] + lifecycle,
                          swiftSettings: settings),

        // Test support: manual clock, temp dirs, process launchers for the built binaries.
        .target(name: "ReelTestKit", dependencies: ["ReelCore", "ReelMedia"], path: "Tests/ReelTestKit", swiftSettings: settings),
        .testTarget(name: "ReelCoreTests", dependencies: ["ReelCore", "ReelMedia", "ReelTestKit"], swiftSettings: settings),
        .testTarget(name: "ReelPosixTests", dependencies: ["ReelPosix"], swiftSettings: settings),
        .testTarget(name: "ReelStoreTests", dependencies: ["ReelStore", "ReelTestKit"], swiftSettings: settings),
        .testTarget(name: "ReelProviderTests", dependencies: ["ReelProvider", "ReelCurl", "ReelTestKit"],
                    swiftSettings: settings),
        .testTarget(name: "ReelSpoolTests", dependencies: ["ReelSpool", "ReelPosix", "ReelTestKit"], swiftSettings: settings),
        .testTarget(name: "ReelSystemdTests", dependencies: ["ReelSystemd", "ReelTestKit"], swiftSettings: settings),
        .testTarget(name: "ReelOutputTests", dependencies: ["ReelOutput", "ReelCore", "ReelMedia", "ReelTestKit"],
                    swiftSettings: settings),
        .testTarget(name: "ReelSandboxTests", dependencies: ["ReelSandbox", "ReelCurl", "ReelTestKit"],
                    swiftSettings: settings),
        .testTarget(name: "ReelControlTests", dependencies: ["ReelControl", "ReelCurl", "ReelTestKit"],
                    swiftSettings: settings),
        .testTarget(name: "ReelDaemonTests", dependencies: ["ReelDaemon", "ReelConfig", "ReelCurl", "ReelMedia", "ReelTestKit"],
                    swiftSettings: settings),
        // The engine on the in-memory store and a scripted provider: no process, no network.
        .testTarget(name: "ReelEngineTests",
                    dependencies: ["ReelDaemon", "ReelStore", "ReelOutput", "ReelControl", "ReelProtocol", "ReelCurl",
                                   "ReelMedia", "ReelTestKit", log],
                    swiftSettings: settings),
    ]
)
