import Foundation
import CLinux
import Glibc
import UnionFS
import XCTest

/// `ListingProber` through a mount: a large listing's later readdirplus chunks take the
/// attributes probed ahead, and those are the files' own; a change through the mount between
/// two chunks is seen (the chunk after it is looked up again, not taken from the probes).
final class ListingProberTests: MountTestCase {
    private let count = 3000

    /// `big/` in the lower layer: `count` files, file i `i` bytes long (sparse).
    private func bigLowerDir() throws {
        let dir = try fx.layer("low").path + "/big"
        XCTAssertEqual(mkdir(dir, 0o755), 0)
        for i in 0..<count {
            let fd = open(dir + "/file-\(i)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(ftruncate(fd, off_t(i)), 0)
            close(fd)
        }
    }

    private func writableMount() throws -> FuseMount {
        try bigLowerDir()
        let upper = try makeDir("upper"), work = try makeDir("work")
        return try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),volatile")
    }

    /// The names of one `getdents64` of `fd` (32 KiB), or nil at the end.
    private func nextChunk(_ fd: Int32) -> [String]? {
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        let n = buffer.withUnsafeMutableBytes { CLinux.getdents64(fd, $0.baseAddress, $0.count) }
        XCTAssertGreaterThanOrEqual(n, 0, "getdents64: errno \(errno)")
        guard n > 0 else { return nil }
        var names: [String] = [], at = 0
        while at < n {
            let length = Int(buffer[at + 16]) | Int(buffer[at + 17]) << 8
            let name = buffer[(at + 19)...].prefix { $0 != 0 }
            names.append(String(decoding: name, as: UTF8.self))
            at += length
        }
        return names
    }

    /// `listing entries probed ahead` from `unionfs-swift stats`.
    private func probedAhead(_ m: FuseMount) throws -> Int {
        let r = try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10)
        XCTAssertEqual(r.status, 0, r.stderr)
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("listing entries probed ahead:") {
            return Int(line.split(separator: " ").last ?? "") ?? -1
        }
        XCTFail("no probed-ahead line in stats:\n\(r.stdout)")
        return -1
    }

    func testLaterChunksShowTheFilesOwnAttributes() throws {
        let m = try writableMount()
        let fd = open(m.mountPoint + "/big", O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var seen = 0, chunks = 0
        while let names = nextChunk(fd) {
            chunks += 1
            seen += names.filter { $0.hasPrefix("file-") }.count
            usleep(50_000)  // a reader with work to do: the prober is done with the next chunk
        }
        XCTAssertEqual(seen, count)
        XCTAssertGreaterThan(chunks, 3, "the listing should take several readdirplus chunks")
        XCTAssertGreaterThan(try probedAhead(m), count / 2, "the chunks after the first come from the prober")
        // Served from the attributes readdirplus gave the kernel.
        for i in stride(from: 0, to: count, by: 7) {
            var st = stat(), lower = stat()
            XCTAssertEqual(lstat(m.mountPoint + "/big/file-\(i)", &st), 0)
            XCTAssertEqual(lstat(fx.path("low") + "/big/file-\(i)", &lower), 0)
            XCTAssertEqual(st.st_size, Int(i), "file-\(i)")
            XCTAssertEqual(st.st_ino, lower.st_ino, "file-\(i)")
            XCTAssertEqual(st.st_mode, lower.st_mode, "file-\(i)")
        }
    }

    /// Files changed (copied up) while the prober may already hold their lower attributes:
    /// the kernel must get the new ones.
    func testChangeBetweenChunksIsSeen() throws {
        let m = try writableMount()
        let fd = open(m.mountPoint + "/big", O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let first = Set(try XCTUnwrap(nextChunk(fd)))
        usleep(300_000)  // the prober has probed the next chunk by now (if it ever will)
        var changed: [String] = []
        for i in 0..<count where !first.contains("file-\(i)") && i % 10 == 0 {
            XCTAssertEqual(chmod(m.mountPoint + "/big/file-\(i)", 0o600), 0)
            XCTAssertEqual(truncate(m.mountPoint + "/big/file-\(i)", 5000 + off_t(i)), 0)
            changed.append("file-\(i)")
        }
        XCTAssertGreaterThan(changed.count, 100)
        while nextChunk(fd) != nil {}
        for name in changed {
            var st = stat()
            XCTAssertEqual(lstat(m.mountPoint + "/big/" + name, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o600, name)
            XCTAssertEqual(st.st_size, 5000 + Int(name.dropFirst(5))!, name)
        }
    }
}
