// swift-tools-version:6.2
import PackageDescription

// Hummingbird's own habits: explicit existentials, explicit imports.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// Linux only (glibc, /proc, systemd, Debian's libhdf5): MedSegData refuses other platforms.
let package = Package(
    name: "medsegd",
    products: [
        .executable(name: "medsegd", targets: ["medsegd"]),
        .library(name: "MedSegData", targets: ["MedSegData"]),
        .library(name: "MedSegServer", targets: ["MedSegServer"]),
    ],
    dependencies: [
        // No traits: medsegd reads its own YAML, so swift-configuration is not built.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // zlib: CRC-32 for .npz archives.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // glibc's <malloc.h>: mallopt, mallinfo2, malloc_trim (Linux only, as medsegd is).
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "HDF5",
            dependencies: ["CHDF5"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedSegData",
            dependencies: [
                "HDF5",
                "CZlib",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedSegServer",
            dependencies: [
                "MedSegData",
                "HDF5",  // for DType only
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),  // HTTPParserError: a malformed body is 400
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                "CMalloc",
            ],
            // Served as is at /openapi.yaml; docs/openapi.yaml links here.
            resources: [
                .embedInCode("OpenAPI/openapi.yaml"), .embedInCode("UI/index.html"), .embedInCode("UI/app.js"), .embedInCode("UI/style.css"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "medsegd",
            dependencies: [
                "CMalloc",
                "MedSegData",
                "MedSegServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fixture writers shared by the test targets (real HDF5 files in temporary folders).
        .target(
            name: "TestSupport",
            dependencies: ["HDF5", "MedSegData", "CZlib"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HDF5Tests",
            dependencies: ["HDF5", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedSegDataTests",
            dependencies: ["MedSegData", "HDF5", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedSegServerTests",
            dependencies: [
                "MedSegServer",
                "MedSegData",
                "HDF5",
                "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "medsegdTests",
            dependencies: [
                "TestSupport", "MedSegData", "HDF5",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
