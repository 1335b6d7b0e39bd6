import Foundation
import Glibc
import XCTest

/// The round trips the mount spares the kernel, counted in the daemon's `-d` log: no FLUSH at
/// close on an upper whose close cannot fail, no GETATTR before each chown (our INIT reply
/// agrees to `HANDLE_KILLPRIV_V2`), no OPENDIR or RELEASEDIR (the kernel opens directories
/// itself), no READDIR for a listing the kernel cached. Each of these is a performance path
/// that fails silently: the
/// mount stays correct, just slower, so only a count can tell it went.
final class RequestCountTests: MountTestCase {
    func testRoundTripsSpared() throws {
        try fx.layer("low").file("seed", "s").dir("d")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work)", extraArguments: ["-d"])
        for i in 0..<20 {
            let path = m.mountPoint + "/d/f\(i)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0, path)
            XCTAssertEqual(write(fd, "x", 1), 1)
            XCTAssertEqual(fchown(fd, 1000 + uid_t(i), 1000), 0)
            close(fd)
        }
        for _ in 0..<3 {
            guard let d = opendir(m.mountPoint + "/d") else { XCTFail("opendir"); break }
            var n = 0
            while readdir(d) != nil { n += 1 }
            closedir(d)
            XCTAssertEqual(n, 22)
        }
        m.stop()
        let counts = requestCounts(m.log)
        XCTAssertEqual(counts["CREATE"], 20, "the log counts requests: \(counts)")
        XCTAssertNil(counts["FLUSH"], "FLUSH sent at close: \(counts)")
        XCTAssertNil(counts["RELEASEDIR"], "directories opened through the daemon: \(counts)")
        XCTAssertLessThanOrEqual(counts["OPENDIR"] ?? 0, 1, "directories opened through the daemon: \(counts)")
        // The first listing takes one chunk and the empty one that ends it; the next two come
        // from the kernel's cache.
        XCTAssertLessThanOrEqual((counts["READDIR"] ?? 0) + (counts["READDIRPLUS"] ?? 0), 2, "listings not cached: \(counts)")
        // One GETATTR per create is the parent's (the kernel drops its attributes after each
        // create); without HANDLE_KILLPRIV each chown would add one of its own.
        XCTAssertLessThanOrEqual(counts["GETATTR"] ?? 0, 25, "GETATTR before chown: \(counts)")
    }

    /// With the writeback cache (`writeback=1`) the kernel sends FLUSH at every close whatever
    /// FOPEN_NOFLUSH says; on an upper whose close cannot fail the first FLUSH is answered
    /// ENOSYS and the kernel sends no more (one round trip less per file written). Data still
    /// reaches the upper at close.
    func testWritebackMountSendsNoFlushes() throws {
        try fx.layer("low").file("seed", "s").dir("d")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),writeback=1", extraArguments: ["-d"])
        for i in 0..<20 {
            let path = m.mountPoint + "/d/f\(i)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0, path)
            for _ in 0..<4 { XCTAssertEqual(write(fd, "0123456789", 10), 10) }
            close(fd)
            XCTAssertEqual(try? String(contentsOfFile: upper + "/d/f\(i)", encoding: .utf8),
                           String(repeating: "0123456789", count: 4), "data in the upper at close")
        }
        m.stop()
        let counts = requestCounts(m.log)
        XCTAssertEqual(counts["CREATE"], 20, "the log counts requests: \(counts)")
        XCTAssertLessThanOrEqual(counts["WRITE"] ?? 0, 20, "writes not gathered by the writeback cache: \(counts)")
        XCTAssertLessThanOrEqual(counts["FLUSH"] ?? 0, 1, "FLUSH at every close: \(counts)")
    }

    /// Requests per opcode in a daemon's `-d` log.
    private func requestCounts(_ log: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in log.split(separator: "\n") where line.hasPrefix("unique: ") {
            guard let r = line.range(of: "opcode: ") else { continue }
            counts[String(line[r.upperBound...].prefix { $0.isLetter || $0 == "_" }), default: 0] += 1
        }
        return counts
    }
}
