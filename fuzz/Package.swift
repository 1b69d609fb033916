// swift-tools-version:6.2
import PackageDescription

// libFuzzer targets for medsegd's parsers and file readers, kept out of the main package so that
// its ordinary builds never see them. Built by scripts/fuzz with -sanitize=fuzzer,address.
let package = Package(
    name: "medsegd-fuzz",
    dependencies: [.package(name: "medsegd", path: "..")],
    targets: [
        .executableTarget(
            name: "MedSegFuzz",
            dependencies: ["CFuzzer", .product(name: "MedSegData", package: "medsegd")]
        ),
        .target(name: "CFuzzer"),
    ]
)
