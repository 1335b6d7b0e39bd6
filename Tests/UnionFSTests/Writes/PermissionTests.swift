import Foundation
import Glibc
import XCTest

/// Issue 4 item 6: permissions as the kernel checks them, and name/path length limits.
final class PermissionTests: WriteTestCase {
    /// Runs `script` in `dir` as uid/gid 65534 without supplementary groups; returns its status.
    private func asNobody(_ script: String, in dir: String) throws -> ProcessResult {
        try Run.program("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                             "/bin/sh", "-c", "cd \"$0\" && " + script, dir], timeout: 20)
    }

    /// Read-only lower files and dirs can be chmod'ed, renamed and removed by root, and by their
    /// owner where the directory allows it.
    func testReadOnlyLowerEntries() throws {
        try fx.layer("low").dir("ro", mode: 0o555).file("ro/f", "f", mode: 0o444).file("ro/g", "g", mode: 0o400)
            .dir("ro/sub", mode: 0o555).file("ro/sub/x", "x", mode: 0o444)
            .dir("mine", mode: 0o755, uid: 65534, gid: 65534)
            .file("mine/f", "f", mode: 0o444, uid: 65534, gid: 65534)
            .file("mine/g", "g", mode: 0o444, uid: 65534, gid: 65534)
            .file("theirs", "t", mode: 0o444)
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(chmod(m("ro/f"), 0o644)), 0)
        XCTAssertEqual(lstatOf(m("ro/f")).st_mode & 0o7777, 0o644)
        XCTAssertEqual(errnoOf(rename(m("ro/g"), m("ro/g2"))), 0)
        XCTAssertEqual(errnoOf(unlink(m("ro/g2"))), 0)
        try sh("rm -rf ro/sub", in: m(""))
        XCTAssertEqual(names(m("ro")), ["f"])
        XCTAssertEqual(lstatOf(m("ro")).st_mode & 0o7777, 0o555)
        var r = try asNobody("chmod 600 mine/f && mv mine/g mine/g2 && rm -f mine/g2", in: m(""))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(lstatOf(m("mine/f")).st_mode & 0o7777, 0o600)
        XCTAssertEqual(names(m("mine")), ["f"])
        // Not the owner, not root: refused as the kernel refuses it.
        r = try asNobody("chmod 666 theirs", in: m(""))
        XCTAssertNotEqual(r.status, 0)
        r = try asNobody("rm -f ro/f", in: m(""))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(lstatOf(m("theirs")).st_mode & 0o7777, 0o444)
        XCTAssertTrue(exists(m("ro/f")))
        try finishAndCompareWithKernel()
    }

    /// `mkdir -m 0555` and then creating inside it works for root.
    func testCreateInsideReadOnlyDirectoryAsRoot() throws {
        try fx.layer("low").dir("base")
        try mountWritable(["low"])
        try sh("mkdir -m 0555 base/d && echo x > base/d/f && mkdir base/d/sub && mkdir -m 0555 top", in: m(""))
        put(m("top/f"), "y")
        XCTAssertEqual(lstatOf(m("base/d")).st_mode & 0o7777, 0o555)
        XCTAssertEqual(lstatOf(u("base/d")).st_mode & 0o7777, 0o555)
        XCTAssertEqual(text(m("base/d/f")), "x\n")
        XCTAssertEqual(text(m("top/f")), "y")
        try finishAndCompareWithKernel()
    }

    /// A write by a non-owner clears setuid and setgid, as the kernel does; lower data untouched.
    func testSetuidClearedOnWriteByNonOwner() throws {
        try fx.layer("low").file("suid", "data", mode: 0o6777).file("own", "data", mode: 0o4777, uid: 65534, gid: 65534)
        try mountWritable(["low"])
        let r = try asNobody("echo more >> suid", in: m(""))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(text(m("suid")), "datamore\n")
        XCTAssertEqual(lstatOf(m("suid")).st_mode & 0o6000, 0, "setuid/setgid kept after a write by a non-owner")
        XCTAssertEqual(lstatOf(u("suid")).st_mode & 0o6000, 0)
        XCTAssertEqual(lstatOf(fx.path("low") + "/suid").st_mode & 0o7777, 0o6777, "lower changed")
        try finishAndCompareWithKernel()
    }

    /// Names over 255 bytes are ENAMETOOLONG for every kind of create and for lookup.
    func testNameTooLong() throws {
        try fx.layer("low").file("a", "a")
        try mountWritable(["low"])
        let long = String(repeating: "n", count: 256)
        let ok = String(repeating: "n", count: 255)
        XCTAssertEqual(open(m(long), O_WRONLY | O_CREAT, 0o644), -1)
        XCTAssertEqual(errno, ENAMETOOLONG)
        XCTAssertEqual(errnoOf(mkdir(m(long), 0o755)), ENAMETOOLONG)
        XCTAssertEqual(errnoOf(symlink("a", m(long))), ENAMETOOLONG)
        XCTAssertEqual(errnoOf(link(m("a"), m(long))), ENAMETOOLONG)
        XCTAssertEqual(errnoOf(rename(m("a"), m(long))), ENAMETOOLONG)
        XCTAssertFalse(exists(m(long)))
        XCTAssertEqual(errno, ENAMETOOLONG)
        put(m(ok), "ok")
        XCTAssertEqual(text(m(ok)), "ok")
        XCTAssertEqual(names(m("")), ["a", ok])
        try finishAndCompareWithKernel()
    }

    /// A path of PATH_MAX-1 bytes works for create, write, read, stat and unlink.
    func testPathOfPathMaxMinusOne() throws {
        try fx.layer("low").dir("deep")
        try mountWritable(["low"])
        var path = m("deep")
        let component = String(repeating: "c", count: 200)
        while path.utf8.count + 1 + component.utf8.count + 1 + 200 < Int(PATH_MAX) - 1 {
            path += "/" + component
            XCTAssertEqual(errnoOf(mkdir(path, 0o755)), 0, "mkdir at length \(path.utf8.count)")
        }
        let leafLength = Int(PATH_MAX) - 1 - path.utf8.count - 1
        XCTAssertTrue((1...255).contains(leafLength))
        let file = path + "/" + String(repeating: "f", count: leafLength)
        XCTAssertEqual(file.utf8.count, Int(PATH_MAX) - 1)
        put(file, "deep data")
        XCTAssertEqual(text(file), "deep data")
        XCTAssertEqual(lstatOf(file).st_size, 9)
        XCTAssertEqual(open(file + "x", O_RDONLY), -1)
        XCTAssertEqual(errno, ENAMETOOLONG)
        XCTAssertEqual(errnoOf(unlink(file)), 0)
        XCTAssertFalse(exists(file))
    }
}
