import Foundation
import Glibc
import XCTest

/// Issue 4 item 7: with long kernel cache timeouts, no change leaves a stale entry, attribute,
/// negative entry or listing behind.
final class CacheTests: WriteTestCase {
    /// A negative entry (failed lookup) is gone once the name is created, by any kind of create.
    func testNegativeEntriesInvalidatedByCreate() throws {
        try fx.layer("low").file("a", "a").dir("d")
        try mountWritable(["low"])
        for n in ["f", "dir", "sym", "hard", "moved", "d/x"] { XCTAssertFalse(exists(m(n)), n) }
        put(m("f"), "f")
        XCTAssertEqual(errnoOf(mkdir(m("dir"), 0o755)), 0)
        XCTAssertEqual(errnoOf(symlink("a", m("sym"))), 0)
        XCTAssertEqual(errnoOf(link(m("a"), m("hard"))), 0)
        put(m("tmp"), "t")
        XCTAssertEqual(errnoOf(rename(m("tmp"), m("moved"))), 0)
        put(m("d/x"), "x")
        for n in ["f", "dir", "sym", "hard", "moved", "d/x"] { XCTAssertTrue(exists(m(n)), "stale negative entry for \(n)") }
        XCTAssertEqual(names(m("")), ["a", "d", "dir", "f", "hard", "moved", "sym"])
        try finishAndCompareWithKernel()
    }

    /// After rename, unlink and chmod, every name shows the new state at once.
    func testAttributesAndEntriesAfterChanges() throws {
        try fx.layer("low").file("a", "a", mode: 0o644).file("b", "b").file("d/x", "x").file("d/y", "y")
        try mountWritable(["low"])
        // Warm the caches.
        _ = try TreeSnapshot.walk(m(""))
        XCTAssertEqual(errnoOf(link(m("a"), m("a2"))), 0)
        XCTAssertEqual(errnoOf(chmod(m("a2"), 0o600)), 0)
        XCTAssertEqual(lstatOf(m("a")).st_mode & 0o7777, 0o600)
        XCTAssertEqual(errnoOf(unlink(m("a2"))), 0)
        XCTAssertEqual(lstatOf(m("a")).st_nlink, 1)
        XCTAssertEqual(errnoOf(rename(m("b"), m("a"))), 0)
        XCTAssertEqual(text(m("a")), "b")
        XCTAssertEqual(lstatOf(m("a")).st_mode & 0o7777, 0o644)
        XCTAssertFalse(exists(m("b")))
        // A directory replaced by a rename: the old children are not reachable, the new are.
        XCTAssertEqual(errnoOf(mkdir(m("n"), 0o755)), 0)
        put(m("n/z"), "z")
        try sh("rm -rf d && mv n d", in: m(""))
        XCTAssertFalse(exists(m("d/x")))
        XCTAssertEqual(names(m("d")), ["z"])
        XCTAssertEqual(text(m("d/z")), "z")
        try finishAndCompareWithKernel()
    }

    /// A lower directory renamed with its subtree: cached children are reachable under the new
    /// name with their content, and writable there; a file open before the rename keeps working.
    func testChildrenAfterDirectoryRename() throws {
        try fx.layer("low").file("d/a", "a").file("d/s/b", "b")
        try mountWritable(["low"])
        _ = try TreeSnapshot.walk(m(""))
        let fd = open(m("d/s/b"), O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let ino = lstatOf(m("d/s/b")).st_ino
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), 0)
        XCTAssertEqual(lstatOf(m("e/s/b")).st_ino, ino)
        var buf = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(pread(fd, &buf, 8, 0), 1)
        put(m("e/s/b"), "new")
        XCTAssertEqual(text(m("e/s/b")), "new")
        XCTAssertEqual(text(u("e/s/b")), "new")
        XCTAssertEqual(errnoOf(chmod(m("e/a"), 0o600)), 0)
        XCTAssertEqual(lstatOf(u("e/a")).st_mode & 0o7777, 0o600)
        XCTAssertEqual(text(fx.path("low") + "/d/s/b"), "b", "lower changed")
        try finishAndCompareWithKernel()
    }

    /// Names read through `readdir(3)` from `path`, pausing after `pauseAfter` of them to run
    /// `meanwhile` (changes made while the listing is half read).
    private func listing(_ path: String, pauseAfter: Int, meanwhile: () -> Void) -> [String] {
        guard let d = opendir(path) else { XCTFail("opendir \(path): \(errno)"); return [] }
        defer { closedir(d) }
        var out: [String] = []
        var paused = false
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { out.append(name) }
            if !paused && out.count == pauseAfter { paused = true; meanwhile() }
        }
        return out
    }

    /// The kernel caches listings on writable mounts too. A listing read while the directory
    /// changes (names removed, a lower file copied up, which gives the directory an upper part)
    /// shows every name that stayed exactly once, whether the daemon or the kernel's cache
    /// answers the rest; the next listings from the start, the first from the daemon and the
    /// second from the cache, show the directory as it is now.
    func testListingsStayTrueWhileTheDirectoryChanges() throws {
        let low = try fx.layer("low")
        for d in 0..<4 { for i in 0..<3000 { try low.file("big\(d)/f\(i)", "") } }
        try mountWritable(["low"])
        let all = Set((0..<3000).map { "f\($0)" })
        // big0 and big1 are listed by the daemon when the changes come, big2 and big3 from the
        // kernel's cache (filled by a full listing first).
        XCTAssertEqual(Set(listing(m("big2"), pauseAfter: 0) {}), all)
        XCTAssertEqual(Set(listing(m("big3"), pauseAfter: 0) {}), all)
        for d in 0..<4 {
            let dir = "big\(d)"
            var removed: Set<String> = []
            let seen = listing(m(dir), pauseAfter: 700) {
                self.put(self.m(dir + "/f\(d * 3)"), "copy-up", flags: O_WRONLY | O_APPEND)
                for k in 0..<300 {
                    let gone = "f\(k * 3 + 1)"
                    XCTAssertEqual(errnoOf(unlink(self.m(dir + "/" + gone))), 0)
                    removed.insert(gone)
                }
            }
            XCTAssertEqual(seen.count, Set(seen).count, "\(dir): a name listed twice")
            let stayed = all.subtracting(removed)
            XCTAssertTrue(stayed.isSubset(of: Set(seen)), "\(dir): names that stayed are missing: \(stayed.subtracting(Set(seen)).count)")
            for k in 0..<50 { put(m(dir + "/new\(k)"), "n") }
            let expected = stayed.union((0..<50).map { "new\($0)" })
            XCTAssertEqual(Set(listing(m(dir), pauseAfter: 0) {}), expected, "\(dir): listing after the changes")
            XCTAssertEqual(Set(listing(m(dir), pauseAfter: 0) {}), expected, "\(dir): cached listing after the changes")
        }
        try finishAndCompareWithKernel()
    }
}
