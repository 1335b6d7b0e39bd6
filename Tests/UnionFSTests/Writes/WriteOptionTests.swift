import Foundation
import Glibc
import XCTest

/// Issue 4 item 8: the mount options of the write path: userxattr, volatile, rename_exdev.
final class WriteOptionTests: WriteTestCase {
    /// `userxattr`: opaque markers go to `user.overlay.opaque`, never `trusted.overlay.*`, and
    /// kernel overlayfs with `userxattr` reads the upper the same way.
    func testUserxattrWritesUserNamespace() throws {
        try fx.layer("low").file("d/x", "x").file("f", "f").file("g", "g")
            .dir("u").setXattr("u", "user.overlay.opaque", "y").file("u/only", "o")
        try fx.layer("bot").file("u/hidden", "h")
        try mountWritable(["low", "bot"], extraOptions: ",userxattr")
        XCTAssertEqual(names(m("u")), ["only"], "user.overlay.opaque in a lower not honoured")
        try sh("rm -rf d && mkdir d && rm f && mv g h && mkdir new", in: m(""))
        XCTAssertEqual(UpperForm.opaqueValue(u("d"), namespace: "user"), "y")
        XCTAssertNil(UpperForm.opaqueValue(u("d"), namespace: "trusted"))
        XCTAssertTrue(UpperForm.isWhiteout(u("f")))
        XCTAssertTrue(UpperForm.isWhiteout(u("g")))
        XCTAssertEqual(UpperForm.opaqueValue(u("new"), namespace: "user"), "y")
        // The mount hides the user.overlay.* names it uses.
        XCTAssertFalse(try TreeSnapshot.xattrNames(m("d")).contains { $0.hasPrefix("user.overlay.") })
        let mine = try finishAndCompareWithKernel(namespace: "user")
        let mnt = try makeDir("kernel-userxattr")
        let data = "lowerdir=" + ([upperDir] + lowers).joined(separator: ":") + ",userxattr"
        XCTAssertEqual(Glibc.mount("overlay", mnt, "overlay", 0, data), 0, String(cString: strerror(errno)))
        addCleanup { MountTable.forceUnmount(mnt) }
        var theirs = try TreeSnapshot.walk(mnt)
        MountTable.forceUnmount(mnt)
        // The kernel shows user.overlay.* of lower layers as ordinary xattrs in this mode only
        // where they are not its own; drop them from the comparison of user xattrs.
        for k in theirs.entries.keys { theirs.entries[k]!.xattrs = theirs.entries[k]!.xattrs.filter { !$0.key.hasPrefix("user.overlay.") } }
        XCTAssertTreesEqual(mine, theirs, ignoringDirectorySize: true)
        XCTAssertEqual(Set(mine.entries.keys), ["", "d", "h", "new", "u", "u/only"])
    }

    /// `volatile`: the mount works (create, copy-up, rename) without fsync.
    func testVolatileMountWorks() throws {
        try fx.layer("low").file("big", String(repeating: "v", count: 1 << 20)).file("d/a", "a")
        try mountWritable(["low"], extraOptions: ",volatile")
        put(m("new"), "n")
        let fd = open(m("big"), O_WRONLY | O_APPEND)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(Glibc.write(fd, "!", 1), 1)
        XCTAssertEqual(fsync(fd), 0)
        close(fd)
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), 0)
        XCTAssertEqual(lstatOf(u("big")).st_size, (1 << 20) + 1)
        XCTAssertEqual(text(m("e/a")), "a")
        try finishAndCompareWithKernel()
    }

    /// `writeback=1`: the kernel's writeback cache. Files opened write-only or append-only still
    /// append at the end and land complete in the upper at close; copy-up and create work.
    func testWritebackCacheMount() throws {
        try fx.layer("low").file("log", "line1\n").file("d/a", "a")
        try mountWritable(["low"], extraOptions: ",writeback=1")
        for line in ["line2\n", "line3\n"] {
            let fd = open(m("log"), O_WRONLY | O_APPEND)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(Glibc.write(fd, line, line.utf8.count), line.utf8.count)
            close(fd)
        }
        XCTAssertEqual(text(m("log")), "line1\nline2\nline3\n")
        XCTAssertEqual(text(u("log")), "line1\nline2\nline3\n", "data in the upper after close")
        let w = open(m("d/new"), O_WRONLY | O_CREAT | O_TRUNC, 0o640)
        XCTAssertGreaterThanOrEqual(w, 0)
        XCTAssertEqual(pwrite(w, "xyz", 3, 10), 3)
        XCTAssertEqual(fsync(w), 0)
        XCTAssertEqual(lstatOf(u("d/new")).st_size, 13, "in the upper after fsync")
        close(w)
        XCTAssertEqual(lstatOf(m("d/new")).st_mode & 0o777, 0o640)
        try finishAndCompareWithKernel()
    }

    /// `rename_exdev`: renaming a dir with lower content is EXDEV (mv falls back to copying);
    /// pure-upper dirs and files still rename.
    func testRenameExdevOption() throws {
        try fx.layer("low").file("d/a", "a").file("f", "f")
        try mountWritable(["low"], extraOptions: ",rename_exdev")
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), EXDEV)
        XCTAssertEqual(names(m("d")), ["a"])
        XCTAssertEqual(names(upperDir).filter { $0 == "e" }, [])
        XCTAssertEqual(errnoOf(mkdir(m("p"), 0o755)), 0)
        XCTAssertEqual(errnoOf(rename(m("p"), m("q"))), 0)
        XCTAssertEqual(errnoOf(rename(m("f"), m("g"))), 0)
        try sh("mv d e", in: m(""))
        XCTAssertEqual(names(m("e")), ["a"])
        XCTAssertFalse(exists(m("d")))
        let snap = try finishAndCompareWithKernel()
        XCTAssertEqual(Set(snap.entries.keys), ["", "e", "e/a", "g", "q"])
    }
}
