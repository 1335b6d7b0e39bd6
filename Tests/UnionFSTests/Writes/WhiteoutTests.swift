import Foundation
import Glibc
import XCTest

/// docs/SEMANTICS.md §6 cases 1–4, 8 and 20: deleting and recreating over lower content, as the
/// merged view shows it and as the upper stores it.
final class WhiteoutTests: WriteTestCase {
    /// Case 1: deleting a lower file leaves a char 0:0 whiteout; the name is ENOENT.
    func testDeleteLowerFileLeavesWhiteout() throws {
        try fx.layer("low").file("a", "a").file("d/b", "b")
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(unlink(m("a"))), 0)
        XCTAssertEqual(errnoOf(unlink(m("d/b"))), 0)
        XCTAssertFalse(exists(m("a")))
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(names(m("")), ["d"])
        XCTAssertEqual(names(m("d")), [])
        XCTAssertTrue(UpperForm.isWhiteout(u("a")))
        XCTAssertTrue(UpperForm.isWhiteout(u("d/b")))
        XCTAssertEqual(text(fx.path("low") + "/a"), "a", "lower changed")
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "d"])
    }

    /// Case 2: deleting a file that exists only in the upper leaves no whiteout.
    func testDeleteUpperOnlyFileLeavesNothing() throws {
        try fx.layer("low").file("keep", "k").dir("d")
        try mountWritable(["low"])
        put(m("new"), "n")
        put(m("d/new"), "n")
        XCTAssertTrue(exists(u("new")))
        XCTAssertEqual(errnoOf(unlink(m("new"))), 0)
        XCTAssertEqual(errnoOf(unlink(m("d/new"))), 0)
        XCTAssertFalse(exists(u("new")), "upper-only file left something behind")
        XCTAssertFalse(exists(u("d/new")))
        XCTAssertEqual(names(m("")), ["d", "keep"])
        try finishAndCompareWithKernel()
    }

    /// Case 3: `rm -rf d; mkdir d` over a lower dir gives an opaque dir without lower children.
    func testRemoveTreeThenMkdirIsOpaque() throws {
        try fx.layer("low").file("d/x", "x").file("d/sub/y", "y").dir("d/empty")
        try mountWritable(["low"])
        try sh("rm -rf d && mkdir d && echo new > d/new", in: m(""))
        XCTAssertEqual(names(m("d")), ["new"])
        XCTAssertEqual(UpperForm.opaqueValue(u("d")), "y")
        XCTAssertEqual(names(u("d")), ["new"], "whiteouts left inside the opaque dir")
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "d", "d/new"])
    }

    /// Case 4: recreating over a whiteout replaces it in one step: the new entry, no whiteout,
    /// for a file, a dir (opaque), a symlink and a FIFO.
    func testRecreateOverWhiteout() throws {
        try fx.layer("low").file("f", "old").dir("d").file("d/old", "o").file("l", "old").file("p", "old")
        try mountWritable(["low"])
        for n in ["f", "d/old", "l", "p"] { XCTAssertEqual(errnoOf(unlink(m(n))), 0, n) }
        XCTAssertEqual(errnoOf(rmdir(m("d"))), 0)
        for n in ["f", "d", "l", "p"] { XCTAssertTrue(UpperForm.isWhiteout(u(n)), "no whiteout at \(n)") }
        put(m("f"), "new")
        XCTAssertEqual(errnoOf(mkdir(m("d"), 0o755)), 0)
        XCTAssertEqual(errnoOf(symlink("f", m("l"))), 0)
        XCTAssertEqual(errnoOf(mkfifo(m("p"), 0o644)), 0)
        XCTAssertEqual(text(m("f")), "new")
        XCTAssertEqual(names(m("d")), [])
        XCTAssertEqual(lstatOf(u("f")).st_mode & S_IFMT, S_IFREG)
        XCTAssertEqual(lstatOf(u("d")).st_mode & S_IFMT, S_IFDIR)
        XCTAssertEqual(UpperForm.opaqueValue(u("d")), "y")
        XCTAssertEqual(lstatOf(u("l")).st_mode & S_IFMT, S_IFLNK)
        XCTAssertEqual(lstatOf(u("p")).st_mode & S_IFMT, S_IFIFO)
        XCTAssertEqual(names(workDir + "/work"), [], "staging junk left in the workdir")
        try finishAndCompareWithKernel()
    }

    /// Case 8: rmdir of a merged dir succeeds once every lower entry is whited out, and is
    /// ENOTEMPTY while one is left.
    func testRmdirMergedDirectory() throws {
        try fx.layer("top").file("d/a", "a").file("e/a", "a")
        try fx.layer("bot").file("d/b", "b").file("d/c", "c").file("e/b", "b")
        try mountWritable(["top", "bot"])
        XCTAssertEqual(errnoOf(unlink(m("d/a"))), 0)
        XCTAssertEqual(errnoOf(unlink(m("d/b"))), 0)
        XCTAssertEqual(errnoOf(rmdir(m("d"))), ENOTEMPTY)
        XCTAssertEqual(names(m("d")), ["c"])
        XCTAssertEqual(errnoOf(unlink(m("d/c"))), 0)
        XCTAssertEqual(errnoOf(rmdir(m("d"))), 0)
        XCTAssertFalse(exists(m("d")))
        XCTAssertTrue(UpperForm.isWhiteout(u("d")))
        XCTAssertEqual(errnoOf(rmdir(m("e"))), ENOTEMPTY)
        XCTAssertEqual(names(m("e")), ["a", "b"])
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "e", "e/a", "e/b"])
    }

    /// Case 20: `.wh.foo` created through the mount is a plain file (for the kernel too), and
    /// does not hide `foo`.
    func testWhiteoutLikeNameIsPlainFile() throws {
        try fx.layer("low").file("foo", "foo")
        try mountWritable(["low"])
        put(m(".wh.foo"), "plain")
        XCTAssertEqual(text(m(".wh.foo")), "plain")
        XCTAssertEqual(text(m("foo")), "foo")
        XCTAssertEqual(names(m("")), [".wh.foo", "foo"])
        let snap = try finishAndCompareWithKernel(userNames: [".wh.foo"])
        XCTAssertNotNil(snap.entries[".wh.foo"])
        XCTAssertNotNil(snap.entries["foo"])
    }
}
