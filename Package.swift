// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "UnionFS",
    products: [
        .library(name: "UnionFS", targets: ["UnionFS", "UnionFSImages"]),
        .executable(name: "unionfs-swift", targets: ["unionfs-swift"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CAttr", providers: [.apt(["libattr1-dev"])]),
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),
        // The layering (docs/ARCHITECTURE.md): the core has no libfuse, libarchive or crypto;
        // only UnionFSFuse imports CFuse3; only UnionFSOCI (and the images) touch tar and digests.
        .target(
            name: "UnionFSCore",
            dependencies: [
                "CAttr", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "UnionFSFuse",
            dependencies: [
                "UnionFSCore", "CFuse3", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "UnionFSOCI",
            dependencies: [
                "UnionFSCore", "CArchive",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // What embedders import: the three above, re-exported as one module.
        .target(
            name: "UnionFS",
            dependencies: ["UnionFSCore", "UnionFSFuse", "UnionFSOCI",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "UnionFSImages",
            dependencies: ["UnionFS", .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The registry client (image pull/push/login): the only target that networks, so the
        // core, the C library and the CMake build stay free of swift-nio.
        .target(
            name: "UnionFSRegistry",
            dependencies: ["UnionFS", "UnionFSImages",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "unionfs-swift",
            dependencies: [
                "UnionFS", "UnionFSImages", "UnionFSRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "UnionFSC",
            dependencies: ["UnionFS", "CAttr", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .executableTarget(
            name: "unionfs-embed-example",
            dependencies: ["UnionFS"],
            path: "Examples/SwiftEmbedding"
        ),
        .testTarget(
            name: "UnionFSTests",
            dependencies: ["UnionFS", "UnionFSCore", "UnionFSFuse", "UnionFSImages", "UnionFSRegistry", "UnionFSC", "CAttr", "CLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
