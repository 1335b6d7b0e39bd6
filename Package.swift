// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "UnionFS",
    products: [
        .library(name: "UnionFS", targets: ["UnionFS"]),
        .executable(name: "unionfs-swift", targets: ["unionfs-swift"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CAttr", providers: [.apt(["libattr1-dev"])]),
        .systemLibrary(name: "CLinux"),
        .target(
            name: "UnionFS",
            dependencies: [
                "CFuse3", "CAttr", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "unionfs-swift",
            dependencies: [
                "UnionFS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "UnionFSTests",
            dependencies: ["UnionFS", .product(name: "SystemPackage", package: "swift-system")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
