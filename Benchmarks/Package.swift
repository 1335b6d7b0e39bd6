// swift-tools-version: 6.1
import PackageDescription

// In-process benchmarks of the UnionFS library's hot paths (no mount). Kept out of the main
// package so that building or testing it never resolves the benchmark tooling.
//
//   cd Benchmarks && swift package --allow-writing-to-directory /tmp benchmark
//
// Fixtures are built once under /tmp/unionfs-inproc (see Fixtures.swift); delete it to rebuild.
let package = Package(
    name: "UnionFSBenchmarks",
    dependencies: [
        // Named so the product reference works whatever the checkout directory is called.
        .package(name: "UnionFS", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "UnionFSBenchmarks",
            dependencies: [
                .product(name: "UnionFS", package: "UnionFS"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/UnionFSBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
