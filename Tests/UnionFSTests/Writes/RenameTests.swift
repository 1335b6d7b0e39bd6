import CLinux
import Foundation
import Glibc
import XCTest

/// docs/SEMANTICS.md §6 cases 5–7: renaming lower files and directories, and renaming over whiteouts.
final class RenameTests: WriteTestCase {
    /// Case 5: renaming a directory with lower content succeeds; the upper holds an opaque
    /// pure-upper copy and a whiteout, no redirect xattr, and mounts under the kernel.
    func testRenameLowerDirectory() throws {
        try fx.layer("top").file("d/t", "t").dir("d/sub")
        try fx.layer("bot").file("d/b", "b", mode: 0o600, uid: 5, gid: 6).file("d/sub/deep", "deep")
            .symlink("d/link", to: "b")
        try mountWritable(["top", "bot"])
        var before = stat()
        XCTAssertEqual(lstat(m("d/b"), &before), 0)
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), 0)
        XCTAssertFalse(exists(m("d")))
        XCTAssertEqual(names(m("e")), ["b", "link", "sub", "t"])
        XCTAssertEqual(text(m("e/sub/deep")), "deep")
        let after = lstatOf(m("e/b"))
        XCTAssertEqual(after.st_ino, before.st_ino, "st_ino changed by the directory rename")
        XCTAssertEqual(after.st_uid, 5)
        XCTAssertEqual(after.st_mode & 0o7777, 0o600)
        XCTAssertTrue(UpperForm.isWhiteout(u("d")))
        XCTAssertEqual(UpperForm.opaqueValue(u("e")), "y")
        XCTAssertEqual(names(u("e")), ["b", "link", "sub", "t"])
        // The renamed tree is still writable where it now is.
        put(m("e/sub/new"), "n")
        XCTAssertEqual(errnoOf(unlink(m("e/t"))), 0)
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "e", "e/b", "e/link", "e/sub", "e/sub/deep", "e/sub/new"])
    }

    /// Renaming a merged directory keeps what its upper part holds: a file open for writing
    /// keeps writing into the file now under the new name, and upper hard links stay linked.
    func testDirectoryRenameKeepsUpperInodes() throws {
        try fx.layer("low").file("d/lower", "l").file("d/sub/x", "x")
        try mountWritable(["low"])
        put(m("d/sub/open"), "before")
        XCTAssertEqual(errnoOf(link(m("d/sub/open"), m("d/linked"))), 0)
        let fd = open(m("d/sub/open"), O_WRONLY | O_APPEND)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let ino = lstatOf(u("d/sub/open")).st_ino
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), 0)
        XCTAssertEqual(Glibc.write(fd, "+after", 6), 6)
        XCTAssertEqual(text(m("e/sub/open")), "before+after")
        XCTAssertEqual(text(u("e/sub/open")), "before+after", "the write went to a file no name shows")
        XCTAssertEqual(lstatOf(u("e/sub/open")).st_ino, ino)
        XCTAssertEqual(lstatOf(m("e/linked")).st_nlink, 2)
        XCTAssertEqual(text(m("e/linked")), "before+after")
        XCTAssertEqual(UpperForm.opaqueValue(u("e/sub")), "y")
        try finishAndCompareWithKernel()
    }

    /// Case 6: renaming a lower file leaves a whiteout at the source and a copy at the target.
    func testRenameLowerFile() throws {
        try fx.layer("low").file("a", "a", mode: 0o640, uid: 7, gid: 8, xattrs: ["user.k": "v"]).dir("d")
        try mountWritable(["low"])
        let ino = lstatOf(m("a")).st_ino
        XCTAssertEqual(errnoOf(rename(m("a"), m("d/b"))), 0)
        XCTAssertFalse(exists(m("a")))
        XCTAssertEqual(text(m("d/b")), "a")
        XCTAssertEqual(lstatOf(m("d/b")).st_ino, ino)
        XCTAssertTrue(UpperForm.isWhiteout(u("a")))
        let st = lstatOf(u("d/b"))
        XCTAssertEqual(st.st_mode & 0o7777, 0o640)
        XCTAssertEqual(st.st_uid, 7)
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("d/b"), "user.k"), Array("v".utf8))
        try finishAndCompareWithKernel()
    }

    /// Case 7: renaming onto a whited-out name, for a file and for a directory.
    func testRenameOverWhiteout() throws {
        try fx.layer("low").file("gone", "g").dir("gonedir").file("gonedir/x", "x")
            .file("src", "s").file("srcdir/y", "y")
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(unlink(m("gone"))), 0)
        XCTAssertEqual(errnoOf(unlink(m("gonedir/x"))), 0)
        XCTAssertEqual(errnoOf(rmdir(m("gonedir"))), 0)
        put(m("fresh"), "f")
        XCTAssertEqual(errnoOf(mkdir(m("freshdir"), 0o755)), 0)
        put(m("freshdir/z"), "z")
        XCTAssertEqual(errnoOf(rename(m("fresh"), m("gone"))), 0)
        XCTAssertEqual(errnoOf(rename(m("freshdir"), m("gonedir"))), 0)
        XCTAssertEqual(text(m("gone")), "f")
        XCTAssertEqual(names(m("gonedir")), ["z"], "lower content merged into the renamed dir")
        XCTAssertEqual(UpperForm.opaqueValue(u("gonedir")), "y")
        // Lower sources onto whiteouts too.
        XCTAssertEqual(errnoOf(unlink(m("gone"))), 0)
        XCTAssertEqual(errnoOf(rename(m("src"), m("gone"))), 0)
        XCTAssertEqual(errnoOf(rmdir(m("gonedir/z") )), ENOTDIR)
        XCTAssertEqual(errnoOf(unlink(m("gonedir/z"))), 0)
        XCTAssertEqual(errnoOf(rmdir(m("gonedir"))), 0)
        XCTAssertEqual(errnoOf(rename(m("srcdir"), m("gonedir"))), 0)
        XCTAssertEqual(names(m("gonedir")), ["y"])
        XCTAssertFalse(exists(m("src")))
        XCTAssertFalse(exists(m("srcdir")))
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "gone", "gonedir", "gonedir/y"])
    }

    /// RENAME_NOREPLACE and RENAME_EXCHANGE work on lower entries; other flags are EINVAL.
    func testRenameFlags() throws {
        try fx.layer("low").file("a", "a").file("b", "b").dir("d").file("d/x", "x")
        try mountWritable(["low"])
        func rename2(_ a: String, _ b: String, _ flags: UInt32) -> Int32 {
            errnoOf(renameat2(AT_FDCWD, m(a), AT_FDCWD, m(b), flags))
        }
        XCTAssertEqual(rename2("a", "b", unionfs_RENAME_NOREPLACE), EEXIST)
        XCTAssertEqual(rename2("a", "b", unionfs_RENAME_WHITEOUT), EINVAL)
        XCTAssertEqual(rename2("a", "b", unionfs_RENAME_EXCHANGE), 0)
        XCTAssertEqual(text(m("a")), "b")
        XCTAssertEqual(text(m("b")), "a")
        XCTAssertEqual(rename2("a", "d", unionfs_RENAME_EXCHANGE), 0)
        XCTAssertEqual(text(m("d")), "b")
        XCTAssertEqual(names(m("a")), ["x"])
        XCTAssertEqual(rename2("b", "c", unionfs_RENAME_NOREPLACE), 0)
        XCTAssertEqual(names(m("")), ["a", "c", "d"])
        try finishAndCompareWithKernel()
    }
}
