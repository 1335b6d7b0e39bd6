import Benchmark
import Glibc
import UnionFS

// In-process benchmarks of the library's hot paths: no mount, no FUSE, only the UnionFS API the
// daemon calls for each request. Mount-level figures come from Benchmarks/side-by-side.sh.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .syscalls],
                                           maxDuration: .seconds(3), maxIterations: 1000)

    // Lookup of a name whose directory exists in every layer, so each lookup probes them all,
    // and of a name in a directory only the bottom layer holds (the directory's record of its
    // layers means the other 127 are not probed).
    for count in [3, 128] {
        Benchmark("lookup, dir in all \(count) layers",
                  configuration: .init(scalingFactor: .kilo)) { benchmark, fs in
            lookupAll(fs, dir: "d", benchmark: benchmark)
        } setup: { try fileSystem(lowers: Fixtures.lookupLayers(count)) }
    }
    Benchmark("lookup, dir in bottom of 128 layers",
              configuration: .init(scalingFactor: .kilo)) { benchmark, fs in
        lookupAll(fs, dir: "only", benchmark: benchmark)
    } setup: { try fileSystem(lowers: Fixtures.lookupLayers(128)) }

    // Merged listing of a 29k-entry directory over three layers (10k each, 1k whiteouts), as
    // opendir takes it; and the same through the UnionView API.
    Benchmark("opendir, 30k entries over 3 layers", configuration: .init(maxIterations: 200)) { benchmark, fs in
        let big = try lookup(fs, .root, "big")
        benchmark.startMeasurement()
        let handle = try fs.sharedListing(big)
        let count = try handle.entries().count  // the merge runs at the first readdir
        fs.listingRead(handle)  // dropped, as at the end of a listing: the next iteration merges again
        benchmark.stopMeasurement()
        precondition(count == 29_002, "merged \(count) entries")
        fs.forget(big, count: 1)
    } setup: { try fileSystem(lowers: Fixtures.readdirLayers()) }

    // Copy-up of a 256 MiB file: open for writing through UnionFileSystem on a fresh upper.
    Benchmark("copy-up 256 MiB", configuration: .init(metrics: [.wallClock, .cpuTotal, .syscalls],
                                                      maxDuration: .seconds(10), maxIterations: 10)) { benchmark in
        let lower = Fixtures.copyUpLower()
        let run = Fixtures.root + "/copyup/run"
        Fixtures.fresh(run + "/upper"); Fixtures.fresh(run + "/work")
        let fs = try fileSystem(lowers: [lower], upper: run + "/upper", work: run + "/work")
        let id = try lookup(fs, .root, "big.bin")
        benchmark.startMeasurement()
        let fd = try fs.open(id, flags: O_WRONLY)
        benchmark.stopMeasurement()
        fs.release(fd)
        var st = stat()
        precondition(lstat(run + "/upper/big.bin", &st) == 0 && st.st_size == 256 << 20, "no copy in the upper")
    }

    // docker diff of an upper with 100k entries over three lowers of 100k entries each.
    Benchmark("changes, 100k upper over 3x100k lowers",
              configuration: .init(maxDuration: .seconds(10), maxIterations: 20)) { benchmark in
        let (lowers, upper) = Fixtures.changesLayers()
        let changes = try UpperChanges(lowerdirs: lowers, upperdir: upper)
        benchmark.startMeasurement()
        let list = try changes.changes()
        benchmark.stopMeasurement()
        precondition(list.count == 50 * 1000 + 50 + 50 * 1000 + 50 * 1, "\(list.count) changes")
    }

    // Commit of a 1 GiB, 50k-file upper as an OCI layer tar, and `tar` alone on the same upper.
    let layerConfig = Benchmark.Configuration(metrics: [.wallClock, .cpuTotal], warmupIterations: 0,
                                              maxDuration: .seconds(20), maxIterations: 5)
    Benchmark("commit 1 GiB 50k files", configuration: layerConfig) { benchmark in
        let (lower, upper) = Fixtures.commitLayers()
        let out = Fixtures.root + "/commit/layer.tar"
        let changes = try UpperChanges(lowerdirs: [lower], upperdir: upper)
        let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        benchmark.startMeasurement()
        let result = try LayerCommit(changes).write(to: fd)
        benchmark.stopMeasurement()
        close(fd)
        precondition(result.entries >= 50_050, "\(result.entries) entries")
    }
    Benchmark("tar c of the same 1 GiB upper", configuration: layerConfig) { benchmark in
        let (_, upper) = Fixtures.commitLayers()
        benchmark.startMeasurement()
        Fixtures.run("/usr/bin/tar", "cf", Fixtures.root + "/commit/plain.tar", "-C", upper, ".")
        benchmark.stopMeasurement()
    }

    // Apply of that layer tar as a lower layer dir, and `tar x` alone of the same tar.
    Benchmark("apply 1 GiB 50k files", configuration: layerConfig) { benchmark in
        let tar = committedTar()
        let target = Fixtures.root + "/commit/applied"
        Fixtures.run("/bin/rm", "-rf", target)
        benchmark.startMeasurement()
        let result = try LayerApply.apply(tar: tar, to: target, mode: .layer(.trusted))
        benchmark.stopMeasurement()
        precondition(result.entries >= 50_050, "\(result.entries) entries")
    }
    Benchmark("tar x of the same layer tar", configuration: layerConfig) { benchmark in
        let tar = committedTar()
        let target = Fixtures.root + "/commit/untarred"
        Fixtures.fresh(target)
        benchmark.startMeasurement()
        Fixtures.run("/usr/bin/tar", "xf", tar, "-C", target)
        benchmark.stopMeasurement()
    }
}

/// Opens a `UnionFileSystem` over `lowers` (top first), with an upper when given.
func fileSystem(lowers: [String], upper: String? = nil, work: String? = nil) throws -> UnionFileSystem {
    let stack = try LayerStack(LayerStackConfiguration(lowerdirs: lowers, upperdir: upper, workdir: work))
    return try UnionFileSystem(stack: stack)
}

/// One kernel-style lookup: the node id of `name` in `parent`.
func lookup(_ fs: UnionFileSystem, _ parent: NodeID, _ name: String) throws -> NodeID {
    try FileName.validating(name) { (n) throws(Errno) in try fs.lookup(parent: parent, name: n) }.node
}

/// Looks up `dir/f0000…` (1000 names, one per scaled iteration) and forgets each, as the
/// kernel does for a walk over a cold dentry cache.
func lookupAll(_ fs: UnionFileSystem, dir: String, benchmark: Benchmark) {
    guard let parent = try? lookup(fs, .root, dir) else { Fixtures.fatal("no \(dir)") }
    let names = (0..<1000).map { Array(Fixtures.name("f", $0, 4).utf8CString) }
    benchmark.startMeasurement()
    for i in benchmark.scaledIterations {
        names[i % names.count].withUnsafeBufferPointer { n in
            guard let found = try? FileName.validating(n.baseAddress!, { (name) throws(Errno) in try fs.lookup(parent: parent, name: name) })
            else { Fixtures.fatal("lookup failed") }
            fs.forget(found.node, count: 1)
        }
    }
    benchmark.stopMeasurement()
    fs.forget(parent, count: 1)
}

/// The layer tar of the commit fixture, written once.
func committedTar() -> String {
    let tar = Fixtures.root + "/commit/layer.tar"
    var st = stat()
    if stat(tar, &st) == 0 && st.st_size > 1 << 30 { return tar }
    let (lower, upper) = Fixtures.commitLayers()
    do {
        let changes = try UpperChanges(lowerdirs: [lower], upperdir: upper)
        let fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = try LayerCommit(changes).write(to: fd)
        close(fd)
    } catch { Fixtures.fatal("commit: \(error)") }
    return tar
}
