import Foundation
import Glibc
import Synchronization
import UnionFS
import XCTest

/// The small files of a directory read one after another are stored in the kernel's page cache
/// ahead of their opens (`FilesReadAhead`): after a second file of a directory was stored at its
/// open, the files listed after it; after that, a subdirectory from its first file once it is
/// listed. What is read ahead is the lower files' bytes, never older than a write through the
/// mount, and a directory with one file read is left alone.
final class FilesReadAheadTests: MountTestCase {
    private let files = 40

    /// Bytes that differ by file and by position.
    private func content(_ i: Int) -> [UInt8] {
        let size = 1 + i * 997 % 30_000
        return (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i &* 13 &+ $0 >> 12) }
    }

    /// `d/` in the lower layer: `files` small files, and beside them an empty one, one past
    /// the 64 KiB a store takes, a symlink and `d/sub/` with ten small files.
    private func writableMount(files: Int? = nil) throws -> FuseMount {
        let low = try fx.layer("low")
        for i in 0..<(files ?? self.files) { try low.fileBytes("d/f\(i)", content(i)) }
        try low.file("d/empty", "")
        try low.fileBytes("d/large", [UInt8](repeating: 7, count: 100_000))
        try low.symlink("d/link", to: "f1")
        for i in 0..<10 { try low.fileBytes("d/sub/s\(i)", content(100 + i)) }
        let upper = try makeDir("upper"), work = try makeDir("work")
        return try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work)")
    }

    /// The names of `dir` through the mount, in the order readdir gives them (this also makes
    /// the kernel look every entry up, through readdirplus).
    private func listing(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { XCTFail("opendir \(dir): errno \(errno)"); return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// READ requests, files stored, and those of them read ahead, from `unionfs-swift stats`.
    private func counts(_ m: FuseMount) throws -> (reads: Int, stored: Int, ahead: Int) {
        let r = try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10)
        XCTAssertEqual(r.status, 0, r.stderr)
        var reads = 0, stored = -1, ahead = -1
        for line in r.stdout.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 5, words[0] == "READ", let n = Int(words[1]) { reads = n }
            if line.hasPrefix("files stored in the page cache at open:"), words.count >= 13 {
                stored = Int(words[8]) ?? -1
                ahead = Int(words[11]) ?? -1
            }
        }
        return (reads, stored, ahead)
    }

    /// Polls `stats` (every 50 ms, for at most 10 s) until `ahead` files were read ahead.
    private func waitForReadAhead(_ m: FuseMount, _ ahead: Int) throws -> Int {
        var seen = -1
        for _ in 0..<200 {
            seen = try counts(m).ahead
            if seen >= ahead { return seen }
            usleep(50_000)
        }
        return seen
    }

    private func path(_ m: FuseMount, _ name: String) -> String { m.mountPoint + "/d/" + name }
    private func index(_ name: String) -> Int? { name.hasPrefix("f") ? Int(name.dropFirst()) : nil }

    func testTheFilesAfterASecondOneAreReadAhead() throws {
        let m = try writableMount()
        let names = listing(m.mountPoint + "/d")
        let small = names.filter { index($0) != nil }
        XCTAssertEqual(small.count, files)
        // The first two small files in listing order, read as a reader of the listing would.
        for name in small.prefix(2) { XCTAssertEqual(readThrough(path(m, name)), content(index(name)!), name) }
        let expected = files - 2
        XCTAssertEqual(try waitForReadAhead(m, expected), expected, "every later small file, once")
        // Read now, they are the lower bytes, with no READ.
        for name in small.dropFirst(2) { XCTAssertEqual(readThrough(path(m, name)), content(index(name)!), name) }
        XCTAssertEqual(readThrough(path(m, "empty")), [])
        let c = try counts(m)
        XCTAssertEqual(c.reads, 0, "no READ for the files read ahead")
        XCTAssertEqual(c.stored, files, "each small file stored once")
        XCTAssertEqual(c.ahead, expected, "nothing read ahead twice, nor the empty or the large file")
        XCTAssertEqual(readThrough(path(m, "large")), [UInt8](repeating: 7, count: 100_000))
        XCTAssertGreaterThan(try counts(m).reads, 0, "the large file is read through READs")
    }

    func testOneFileReadReadsNothingAhead() throws {
        let m = try writableMount()
        let small = listing(m.mountPoint + "/d").filter { index($0) != nil }
        XCTAssertEqual(readThrough(path(m, small[0])), content(index(small[0])!))
        usleep(300_000)
        let c = try counts(m)
        XCTAssertEqual(c.stored, 1)
        XCTAssertEqual(c.ahead, 0, "one file read is no pattern to follow")
    }

    /// Writers overwrite the head of every later file while they are read ahead (an append
    /// would not show a stale store: the store rewrites only the bytes the lower file has):
    /// each ends as the lower bytes under what was written. (Readers that opened a file before
    /// its copy-up: `StoreAtOpenTests`.)
    func testOverwritesWhileReadingAheadAreSeen() throws {
        let m = try writableMount(files: 400)  // enough for the writers to meet the read-ahead
        let small = listing(m.mountPoint + "/d").filter { index($0) != nil }
        let later = Array(small.dropFirst(2))
        for name in small.prefix(2) { XCTAssertEqual(readThrough(path(m, name)), content(index(name)!), name) }
        let head = Array("overwritten through the mount".utf8)
        let targets = later.map { path(m, $0) }
        let written = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 2) { side in
            for (k, target) in targets.enumerated() where k % 2 == side {
                let fd = open(target, O_WRONLY)
                guard fd >= 0 else { continue }
                if head.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == head.count {
                    written.withLock { $0 += 1 }
                }
                close(fd)
            }
        }
        XCTAssertEqual(written.withLock { $0 }, later.count, "every overwrite written")
        for name in later {
            let lower = content(index(name)!)
            let want = head + lower.dropFirst(head.count)
            XCTAssertEqual(readThrough(path(m, name)), want, name)
        }
    }

    /// Once a directory is read ahead, a subdirectory listed is read ahead from its first file.
    func testASubdirectoryListedNextIsReadAheadWhole() throws {
        let m = try writableMount()
        let small = listing(m.mountPoint + "/d").filter { index($0) != nil }
        for name in small.prefix(2) { _ = readThrough(path(m, name)) }
        XCTAssertEqual(try waitForReadAhead(m, files - 2), files - 2)
        let sub = listing(m.mountPoint + "/d/sub")
        XCTAssertEqual(sub.count, 10)
        XCTAssertEqual(try waitForReadAhead(m, files - 2 + 10), files - 2 + 10, "all of sub/")
        for name in sub {
            XCTAssertEqual(readThrough(m.mountPoint + "/d/sub/" + name), content(100 + Int(name.dropFirst())!), name)
        }
        XCTAssertEqual(try counts(m).reads, 0)
    }
}
