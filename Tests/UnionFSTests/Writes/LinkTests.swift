import CLinux
import Foundation
import Glibc
import XCTest

/// docs/SEMANTICS.md §6 cases 15 and 16, and issue 4 item 5: hard links, whiteout-shaped mknod,
/// and files that stay open after their last name is gone.
final class LinkTests: WriteTestCase {
    /// Case 15: a hard link of a lower file copies it up once; both names share the inode
    /// (st_ino as before the copy-up) and report nlink 2; a change through one shows in the other.
    func testHardLinkOfLowerFile() throws {
        try fx.layer("low").file("a", "data").dir("d")
        try mountWritable(["low"])
        let ino = lstatOf(m("a")).st_ino
        XCTAssertEqual(errnoOf(link(m("a"), m("d/b"))), 0)
        let sa = lstatOf(m("a")), sb = lstatOf(m("d/b"))
        XCTAssertEqual(sa.st_ino, ino)
        XCTAssertEqual(sb.st_ino, ino)
        XCTAssertEqual(sa.st_nlink, 2)
        XCTAssertEqual(sb.st_nlink, 2)
        XCTAssertEqual(lstatOf(u("a")).st_ino, lstatOf(u("d/b")).st_ino, "upper names are not one inode")
        XCTAssertEqual(lstatOf(u("a")).st_nlink, 2)
        put(m("d/b"), "changed")
        XCTAssertEqual(text(m("a")), "changed")
        XCTAssertEqual(errnoOf(chmod(m("d/b"), 0o600)), 0)
        XCTAssertEqual(lstatOf(m("a")).st_mode & 0o7777, 0o600, "attributes through the other name are stale")
        XCTAssertEqual(errnoOf(unlink(m("a"))), 0)
        XCTAssertEqual(lstatOf(m("d/b")).st_nlink, 1)
        XCTAssertTrue(UpperForm.isWhiteout(u("a")))
        XCTAssertEqual(text(m("d/b")), "changed")
        try finishAndCompareWithKernel()
    }

    /// Two names of one lower file: the same st_ino and nlink 2 (as the kernel shows them), but
    /// copy-up breaks the link as the kernel does without `index`: a change through one name
    /// never shows through the other, in the merged view or the upper.
    func testLowerHardLinksBreakOnCopyUp() throws {
        let low = try fx.layer("low")
        try low.file("h1", "hard").dir("d")
        XCTAssertEqual(link(low.abs("h1"), low.abs("d/h2")), 0)
        try mountWritable(["low"])
        let s1 = lstatOf(m("h1")), s2 = lstatOf(m("d/h2"))
        XCTAssertEqual(s1.st_ino, s2.st_ino)
        XCTAssertEqual(s1.st_nlink, 2)
        XCTAssertEqual(errnoOf(chmod(m("h1"), 0o600)), 0)
        put(m("d/h2"), "other", flags: O_WRONLY | O_APPEND)
        XCTAssertEqual(lstatOf(m("d/h2")).st_mode & 0o7777, 0o644, "chmod through h1 changed d/h2")
        XCTAssertEqual(text(m("h1")), "hard", "a write through d/h2 changed h1")
        XCTAssertEqual(text(m("d/h2")), "hardother")
        XCTAssertEqual(text(u("h1")), "hard")
        XCTAssertEqual(text(u("d/h2")), "hardother")
        XCTAssertEqual(lstatOf(m("h1")).st_ino, s1.st_ino, "st_ino changed by copy-up")
        XCTAssertEqual(lstatOf(m("d/h2")).st_ino, s1.st_ino)
        let snap = try TreeSnapshot.walk(m(""))
        for p in snap.inodes { XCTAssertEqual(p.dIno, p.stIno, "d_ino vs st_ino of /\(p.path)") }
        XCTAssertEqual(text(low.abs("h1")), "hard", "lower changed")
        try finishAndCompareWithKernel()
    }

    /// Case 16: `mknod c 0 0` through the mount is EPERM; other nodes work.
    func testMknodWhiteoutIsRefused() throws {
        try fx.layer("low").file("x", "x")
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(mknod(m("w"), S_IFCHR | 0o644, 0)), EPERM)
        XCTAssertEqual(errnoOf(mknod(m("x"), S_IFCHR | 0o644, 0)), EEXIST)
        XCTAssertFalse(exists(m("w")))
        XCTAssertFalse(exists(u("w")))
        XCTAssertEqual(errnoOf(mknod(m("null"), S_IFCHR | 0o666, unionfs_makedev(1, 3))), 0)
        XCTAssertEqual(errnoOf(mkfifo(m("fifo"), 0o600)), 0)
        XCTAssertEqual(lstatOf(u("null")).st_rdev, unionfs_makedev(1, 3))
        XCTAssertEqual(lstatOf(m("fifo")).st_mode & S_IFMT, S_IFIFO)
        try finishAndCompareWithKernel()
    }

    /// An unlinked file that is still open keeps reading and writing; fstat shows nlink 0.
    func testUnlinkedOpenFileKeepsWorking() throws {
        try fx.layer("low").file("lower", "lower data")
        try mountWritable(["low"])
        put(m("upper"), "upper data")
        for name in ["upper", "lower"] {
            let fd = open(m(name), O_RDWR)
            XCTAssertGreaterThanOrEqual(fd, 0, name)
            defer { close(fd) }
            XCTAssertEqual(errnoOf(unlink(m(name))), 0, name)
            XCTAssertFalse(exists(m(name)), name)
            var st = stat()
            XCTAssertEqual(fstat(fd, &st), 0)
            XCTAssertEqual(st.st_nlink, 0, "fstat nlink of unlinked \(name)")
            XCTAssertEqual(pwrite(fd, "XY", 2, 0), 2)
            var buf = [UInt8](repeating: 0, count: 64)
            let n = pread(fd, &buf, 64, 0)
            XCTAssertEqual(String(decoding: buf.prefix(max(n, 0)), as: UTF8.self), "XY" + String(name == "upper" ? "per data" : "wer data"))
            XCTAssertEqual(fstat(fd, &st), 0)
            XCTAssertEqual(st.st_size, 10)
        }
        XCTAssertEqual(names(m("")), [])
        XCTAssertTrue(UpperForm.isWhiteout(u("lower")))
        XCTAssertFalse(exists(u("upper")))
        try finishAndCompareWithKernel()
    }
}
