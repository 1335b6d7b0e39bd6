import Foundation
import Glibc
import XCTest

/// The round trips the kernel sends per file for the workloads of the benchmark (untar, tar
/// read, walk, copy-up by append), each on a fresh mount, counted in the daemon's `-d` log.
///
/// A FUSE request costs a round trip (30-40 µs on a 2-core VM), so requests per file are what
/// bounds these workloads. Each bound is today's count (in the comment) plus about half a
/// request per entry, so a change that adds a request per file (a lost INIT flag, a reply
/// without its attributes, a cache turned off) fails here before it shows in a benchmark.
/// The counts are printed, for the README.
final class RequestsPerWorkloadTests: MountTestCase {
    /// 4 directories of 15 files each under `src`, in the lower "low".
    private let directories = 4, filesPerDirectory = 15
    private var entries: Int { directories * (filesPerDirectory + 1) }

    override func setUpWithError() throws {
        try super.setUpWithError()
        let low = try fx.layer("low")
        for d in 0..<directories {
            for f in 0..<filesPerDirectory {
                try low.file("src/d\(d)/f\(f)", String(repeating: "line \(f)\n", count: 40), uid: 1000 + uid_t(f), gid: 1000)
            }
        }
    }

    /// Mounts "low" with an upper, runs `script` (with `$M` the mount point) and returns the
    /// requests per opcode the daemon saw while it ran.
    private func counts(_ script: String, writable: Bool = true, options extra: String = "") throws -> [String: Int] {
        var options = lowerdirOption(["low"]) + extra
        if writable {
            let upper = try makeDir("upper-\(UUID().uuidString.prefix(8))"), work = try makeDir("work-\(UUID().uuidString.prefix(8))")
            options += ",upperdir=\(upper),workdir=\(work)"
        }
        let m = try fuseMount(options, extraArguments: ["-d"])
        let r = try Run.program("/bin/sh", ["-c", "M='\(m.mountPoint)'; " + script], timeout: 60)
        m.stop()
        XCTAssertFalse(r.timedOut, "workload timed out")
        XCTAssertEqual(r.status, 0, "workload failed: \(r.stderr)")
        var counts: [String: Int] = [:]
        for line in m.log.split(separator: "\n") where line.hasPrefix("unique: ") {
            guard let at = line.range(of: "opcode: ") else { continue }
            counts[String(line[at.upperBound...].prefix { $0.isLetter || $0 == "_" }), default: 0] += 1
        }
        // INIT, the mount's own probes and the unmount's DESTROY are not the workload's.
        for op in ["INIT", "DESTROY", "STATFS"] { counts[op] = nil }
        return counts
    }

    private func report(_ name: String, _ counts: [String: Int], per n: Int, atMost bound: Double,
                        file: StaticString = #filePath, line: UInt = #line) {
        let total = counts.values.reduce(0, +)
        let perEntry = Double(total) / Double(n)
        let detail = counts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("requests per entry, \(name): \(String(format: "%.1f", perEntry)) (\(total) for \(n): \(detail))")
        XCTAssertLessThanOrEqual(perEntry, bound, "\(name): \(detail)", file: file, line: line)
    }

    /// Untar as root (owners, modes and times restored): per file LOOKUP, CREATE, WRITE,
    /// RELEASE, three SETATTRs (owner, mode, times), the parent's GETATTR and two GETXATTRs of
    /// `security.capability`, which the kernel asks for itself before the first write and the
    /// chown of an inode (HANDLE_KILLPRIV_V2 spares the rest).
    func testUntar() throws {
        let tar = tmp + "/src.tar"
        let made = try Run.program("/bin/tar", ["-C", fx.path("low"), "-cf", tar, "src"], timeout: 30)
        XCTAssertEqual(made.status, 0, made.stderr)
        let c = try counts("mkdir \"$M/out\" && tar -C \"$M/out\" --same-owner -xpf '\(tar)'")
        XCTAssertEqual(c["CREATE"], directories * filesPerDirectory, "one CREATE a file: \(c)")
        report("untar", c, per: entries, atMost: 10.5)  // 9.9; 8.9 with passthrough (no WRITE)
    }

    /// Reading every file of a lower tree with tar: per file OPEN, RELEASE and one GETXATTR
    /// (the kernel reads the ACL of a file root does not own once, to check it; cached after);
    /// per directory a listing. No READ: a small lower file's content is stored in the page
    /// cache at its open (`StoreAtOpenTests`), and so no GETATTR either (the kernel drops a
    /// file's atime after each READ it sends, and tar stats each file it read).
    func testTarRead() throws {
        let c = try counts("tar -C \"$M\" -cf - src | cat > /dev/null")
        XCTAssertNil(c["READ"], "the files' contents were stored at their opens: \(c)")
        report("tar read", c, per: entries, atMost: 3.6)  // 3.1; 5.0 with a READ and a GETATTR a file
    }

    /// A cold walk: one READDIRPLUS chunk per directory answers the names with their attributes,
    /// so `find -printf %s` costs about one request a directory, not one a file.
    func testWalk() throws {
        let c = try counts("find \"$M/src\" -printf '%s\\n' > /dev/null", writable: false)
        XCTAssertNil(c["LOOKUP"].flatMap { $0 > directories + 2 ? $0 : nil }, "a LOOKUP per file: \(c)")
        report("walk", c, per: entries, atMost: 0.5)  // 0.2
    }

    /// A warm walk (the second of two on one mount; the counts of one walk subtracted) sends
    /// nothing on a read-only stack: names, attributes and listings are all cached. With an
    /// upper it sends one GETATTR per directory: after each listing it reads from us, the
    /// kernel marks the directory's atime stale unless the mount is read-only
    /// (`fuse_invalidate_atime`), and `find`'s stat asks for the atime.
    func testWarmWalk() throws {
        let walk = "find \"$M/src\" -printf '%s\\n' > /dev/null"
        for writable in [false, true] {
            let once = try counts(walk, writable: writable), twice = try counts(walk + "; " + walk, writable: writable)
            var warm = twice
            for (op, n) in once { warm[op, default: 0] -= n }
            warm = warm.filter { $0.value != 0 }
            if writable {
                XCTAssertEqual(warm, ["GETATTR": directories + 1], "writable: one GETATTR a directory: \(warm)")
            } else {
                XCTAssertEqual(warm, [:], "read-only: nothing: \(warm)")
            }
        }
    }

    /// A walk of a directory of 800 entries, several chunks of a listing: by default every
    /// chunk carries the attributes (READDIRPLUS), so no name costs a LOOKUP; with
    /// `readdirplus=auto` the kernel asks for them in the first chunk only and looks up the rest.
    /// (`ls -l` adds two GETXATTRs a name of its own, `security.selinux` and
    /// `system.posix_acl_access`, which FUSE does not cache.)
    func testWalkOfABigDirectory() throws {
        let low = try fx.layer("low")
        for i in 0..<800 { try low.file("big/entry-with-a-longish-name-\(i)", "") }
        let walk = "find \"$M/big\" -printf '%s\\n' > /dev/null"
        let always = try counts(walk, writable: false)
        XCTAssertGreaterThanOrEqual(always["READDIRPLUS"] ?? 0, 3, "a listing of several chunks: \(always)")
        XCTAssertLessThanOrEqual(always["LOOKUP"] ?? 0, 2, "a LOOKUP per name past the first chunk: \(always)")
        report("walk of 800 entries in one directory", always, per: 800, atMost: 0.1)  // 0.01
        let auto = try counts(walk, writable: false, options: ",readdirplus=auto")
        print("readdirplus=auto: \(auto)")
        XCTAssertGreaterThan(auto["LOOKUP"] ?? 0, 100, "readdirplus=auto: the kernel's heuristic: \(auto)")
    }

    /// Appending to every lower file (a copy-up each): OPEN (the copy-up), WRITE, RELEASE and
    /// two GETXATTRs, the ACL (files of another owner) and the kernel's `security.capability`.
    func testCopyUpByAppend() throws {
        let c = try counts("for f in \"$M\"/src/*/*; do echo x >> \"$f\"; done")
        XCTAssertEqual(c["OPEN"], directories * filesPerDirectory, "one OPEN a file: \(c)")
        report("copy-up by append", c, per: directories * filesPerDirectory, atMost: 5.7)  // 5.2; 4.2 with passthrough
    }
}
