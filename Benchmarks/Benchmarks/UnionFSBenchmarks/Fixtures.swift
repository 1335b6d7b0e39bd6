import Glibc
import UnionFS

/// Layer fixtures for the in-process benchmarks, built once under `/tmp/unionfs-inproc` (a stamp
/// file per fixture records that it is complete; delete the directory to rebuild). Plain Glibc
/// calls: building 500k files through a shell would take longer than the benchmarks.
enum Fixtures {
    static let root = "/tmp/unionfs-inproc"

    /// Builds the fixture `name` with `body` unless its stamp exists; returns its directory.
    static func once(_ name: String, _ body: (String) -> Void) -> String {
        let dir = "\(root)/\(name)"
        let stamp = "\(dir)/.complete"
        if access(stamp, F_OK) == 0 { return dir }
        run("/bin/rm", "-rf", dir)
        mkdirs(dir)
        body(dir)
        touch(stamp)
        return dir
    }

    // MARK: lookup: 128 layers, each holding `d/`; the files sit in the bottom layer only.

    /// Lowers for the lookup benchmarks, top first: `d/` in every layer, `d/f0000…f0999` and
    /// `only/f0000…f0999` in the bottom one (so `only/` is a directory of the bottom layer alone).
    static func lookupLayers(_ count: Int) -> [String] {
        let dir = once("lookup") { dir in
            for i in 0..<128 {
                let layer = "\(dir)/L\(i)"
                mkdirs("\(layer)/d")
                touch("\(layer)/d/x\(i)")
            }
            mkdirs("\(dir)/L127/only")
            for f in 0..<1000 {
                touch("\(dir)/L127/d/\(name("f", f, 4))")
                touch("\(dir)/L127/only/\(name("f", f, 4))")
            }
        }
        // The top count-1 layers and the bottom one.
        return (0..<(count - 1)).map { "\(dir)/L\($0)" } + ["\(dir)/L127"]
    }

    // MARK: readdir: `big/` with 10k entries in each of three layers, 1k whiteouts on top.

    static func readdirLayers() -> [String] {
        let dir = once("readdir") { dir in
            for (layer, prefix) in [("a", "t"), ("b", "m"), ("c", "b")] {
                mkdirs("\(dir)/\(layer)/big")
                for i in 0..<10_000 { touch("\(dir)/\(layer)/big/\(name(prefix, i, 5))") }
            }
            for i in 0..<1000 { whiteout("\(dir)/a/big/\(name("b", i, 5))") }
        }
        return ["a", "b", "c"].map { "\(dir)/\($0)" }
    }

    // MARK: copy-up: one 256 MiB file in a lower.

    static func copyUpLower() -> String {
        once("copyup") { dir in
            mkdirs("\(dir)/lower")
            let fd = open("\(dir)/lower/big.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            for i in 0..<256 {
                for j in stride(from: 0, to: chunk.count, by: 4096) { chunk[j] = UInt8(truncatingIfNeeded: i &+ j) }
                _ = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            }
            close(fd)
        } + "/lower"
    }

    // MARK: changes: an upper of 100k entries over three lowers of 100k entries each.

    /// Each lower holds `dNNN/` (100 dirs) with 1000 files named by layer; the upper changes
    /// 40k lower files (C), whites out 10k (D) and adds 50 new dirs of 1000 files (A).
    static func changesLayers() -> (lowers: [String], upper: String) {
        let dir = once("changes") { dir in
            for (layer, prefix) in [("l1", "a"), ("l2", "b"), ("l3", "c")] {
                for d in 0..<100 {
                    let sub = "\(dir)/\(layer)/\(name("d", d, 3))"
                    mkdirs(sub)
                    for f in 0..<1000 { touch("\(sub)/\(name(prefix, f, 4))") }
                }
            }
            for d in 0..<50 {
                let sub = "\(dir)/upper/\(name("d", d, 3))"
                mkdirs(sub)
                for f in 0..<800 { write("\(sub)/\(name("c", f, 4))", "changed") }
                for f in 800..<1000 { whiteout("\(sub)/\(name("c", f, 4))") }
            }
            for d in 0..<50 {
                let sub = "\(dir)/upper/\(name("n", d, 3))"
                mkdirs(sub)
                for f in 0..<1000 { touch("\(sub)/\(name("f", f, 4))") }
            }
        }
        return (["l1", "l2", "l3"].map { "\(dir)/\($0)" }, "\(dir)/upper")
    }

    // MARK: commit/apply: a 1 GiB, 50k-file upper over an empty lower.

    static func commitLayers() -> (lower: String, upper: String) {
        let dir = once("commit") { dir in
            mkdirs("\(dir)/lower")
            var data = [UInt8](repeating: 0, count: 21_474)  // 50k × 21,474 B ≈ 1 GiB
            for d in 0..<50 {
                let sub = "\(dir)/upper/\(name("d", d, 3))"
                mkdirs(sub)
                for f in 0..<1000 {
                    data[0] = UInt8(truncatingIfNeeded: d); data[1] = UInt8(truncatingIfNeeded: f)
                    data[2] = UInt8(truncatingIfNeeded: f >> 8)
                    let fd = open("\(sub)/\(name("f", f, 4))", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                    _ = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                }
            }
        }
        return ("\(dir)/lower", "\(dir)/upper")
    }

    // MARK: helpers

    static func name(_ prefix: String, _ i: Int, _ width: Int) -> String {
        let digits = String(i)
        return prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func mkdirs(_ path: String) { run("/bin/mkdir", "-p", path) }

    static func touch(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        if fd >= 0 { close(fd) }
    }

    static func write(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return }
        var t = text
        _ = t.withUTF8 { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// A 0:0 character device: the overlay whiteout (needs root).
    static func whiteout(_ path: String) {
        if mknod(path, S_IFCHR | 0o600, 0) != 0 { fatal("mknod \(path): errno \(errno) (run as root)") }
    }

    /// Makes a fresh empty directory at `path`.
    static func fresh(_ path: String) {
        run("/bin/rm", "-rf", path)
        mkdirs(path)
    }

    /// Runs a program and waits; aborts the benchmark run if it fails.
    @discardableResult
    static func run(_ argv: String...) -> Int32 {
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        let rc = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
        guard rc == 0 else { fatal("cannot run \(argv[0]): \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status != 0 { fatal("\(argv.joined(separator: " ")) failed: status \(status)") }
        return status
    }

    static func fatal(_ message: String) -> Never {
        var line = "UnionFSBenchmarks: \(message)\n"
        _ = line.withUTF8 { Glibc.write(2, $0.baseAddress, $0.count) }
        exit(1)
    }
}
