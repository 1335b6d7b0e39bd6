import CAttr
import Foundation
import Glibc
import XCTest

/// docs/SEMANTICS.md §6 cases 12–14 and 18: what copy-up keeps, when it happens, and inode numbers.
final class CopyUpTests: WriteTestCase {
    private let oldTime = timespec(tv_sec: 1_000_000_000, tv_nsec: 123_456_789)

    private func setTimes(_ path: String) {
        var t = [oldTime, oldTime]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &t, AT_SYMLINK_NOFOLLOW), 0, "utimensat \(path)")
    }

    /// Case 12: mode (with setuid), owner, times, user xattrs and security.capability survive a
    /// copy-up; overlay xattrs of the lower file do not come along; the parent's mtime stays.
    func testCopyUpKeepsMetadata() throws {
        let low = try fx.layer("low")
        try low.file("d/f", "data", mode: 0o4750, uid: 1234, gid: 99, xattrs: ["user.x": "1", "user.y": "two"])
            .setXattr("d/f", "trusted.overlay.origin", "junk").setXattr("d/f", "trusted.keep", "k")
        let r = try Run.program("/usr/sbin/setcap", ["cap_net_raw+ep", low.abs("d/f")])
        XCTAssertEqual(r.status, 0, r.stderr)
        // setcap clears nothing but the mode must be what the test says.
        XCTAssertEqual(chmod(low.abs("d/f"), 0o4750), 0)
        setTimes(low.abs("d/f"))
        setTimes(low.abs("d"))
        let capBefore = try TreeSnapshot.xattrValue(low.abs("d/f"), "security.capability")
        try mountWritable(["low"])
        let parentBefore = lstatOf(m("d"))
        // Open for write without writing: a copy-up with nothing changed.
        let fd = open(m("d/f"), O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let st = lstatOf(u("d/f"))
        XCTAssertEqual(st.st_mode & 0o7777, 0o4750)
        XCTAssertEqual(st.st_uid, 1234)
        XCTAssertEqual(st.st_gid, 99)
        XCTAssertEqual(st.st_mtim.tv_sec, oldTime.tv_sec)
        XCTAssertEqual(st.st_mtim.tv_nsec, oldTime.tv_nsec)
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("d/f"), "user.x"), Array("1".utf8))
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("d/f"), "user.y"), Array("two".utf8))
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("d/f"), "trusted.keep"), Array("k".utf8))
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("d/f"), "security.capability"), capBefore)
        XCTAssertFalse(try TreeSnapshot.xattrNames(u("d/f")).contains { $0.contains(".overlay.") })
        // The copied-up ancestor has the lower dir's times, and the merged parent's mtime is unchanged.
        let ud = lstatOf(u("d"))
        XCTAssertEqual(ud.st_mtim.tv_sec, oldTime.tv_sec)
        let parentAfter = lstatOf(m("d"))
        XCTAssertEqual(parentAfter.st_mtim.tv_sec, parentBefore.st_mtim.tv_sec)
        XCTAssertEqual(parentAfter.st_mtim.tv_nsec, parentBefore.st_mtim.tv_nsec)
        // Through the mount the same metadata shows.
        let ms = lstatOf(m("d/f"))
        XCTAssertEqual(ms.st_mode & 0o7777, 0o4750)
        XCTAssertEqual(ms.st_mtim.tv_sec, oldTime.tv_sec)
        XCTAssertEqual(try TreeSnapshot.xattrValue(m("d/f"), "security.capability"), capBefore)
        try finishAndCompareWithKernel()
    }

    /// Case 13: a deep copy-up makes every ancestor with its lower metadata.
    func testDeepCopyUpCreatesAncestorsWithLowerMetadata() throws {
        let low = try fx.layer("low")
        try low.dir("a", mode: 0o711, uid: 11, gid: 12, xattrs: ["user.a": "A"])
            .dir("a/b", mode: 0o750, uid: 13, gid: 14).dir("a/b/c", mode: 0o1777)
            .file("a/b/c/f", "f").file("a/other", "o")
        for p in ["a", "a/b", "a/b/c"] { setTimes(low.abs(p)) }
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(chmod(m("a/b/c/f"), 0o600)), 0)
        for (p, mode, uid) in [("a", 0o711, 11), ("a/b", 0o750, 13), ("a/b/c", 0o1777, 0)] {
            let st = lstatOf(u(p))
            XCTAssertEqual(st.st_mode & S_IFMT, S_IFDIR, p)
            XCTAssertEqual(st.st_mode & 0o7777, mode_t(mode), p)
            XCTAssertEqual(st.st_uid, uid_t(uid), p)
            XCTAssertEqual(st.st_mtim.tv_sec, oldTime.tv_sec, "mtime of upper \(p)")
            XCTAssertNil(UpperForm.opaqueValue(u(p)), "copied-up dir \(p) must not be opaque")
        }
        XCTAssertEqual(try TreeSnapshot.xattrValue(u("a"), "user.a"), Array("A".utf8))
        XCTAssertEqual(names(u("a")), ["b"], "copy-up of a dir copied its children")
        XCTAssertEqual(names(m("a")), ["b", "other"])
        XCTAssertEqual(lstatOf(u("a/b/c/f")).st_mode & 0o7777, 0o600)
        try finishAndCompareWithKernel()
    }

    /// Case 14: O_RDONLY copies nothing up; O_WRONLY copies up; O_TRUNC gives size 0.
    func testOpenModesAndCopyUp() throws {
        try fx.layer("low").file("r", "read me").file("w", "write me").file("t", "truncate me")
        try mountWritable(["low"])
        var fd = open(m("r"), O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var buf = [UInt8](repeating: 0, count: 32)
        XCTAssertEqual(read(fd, &buf, 32), 7)
        close(fd)
        _ = names(m(""))
        _ = lstatOf(m("r"))
        XCTAssertEqual(names(upperDir), [], "a read, stat or readdir copied something up")
        fd = open(m("w"), O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(pwrite(fd, "W", 1, 0), 1)
        close(fd)
        XCTAssertEqual(text(u("w")), "Write me")
        XCTAssertEqual(text(m("w")), "Write me")
        fd = open(m("t"), O_WRONLY | O_TRUNC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(lstatOf(m("t")).st_size, 0)
        close(fd)
        XCTAssertEqual(lstatOf(u("t")).st_size, 0)
        XCTAssertEqual(text(fx.path("low") + "/t"), "truncate me", "lower changed")
        XCTAssertEqual(names(upperDir), ["t", "w"])
        try finishAndCompareWithKernel()
    }

    /// Case 18: st_ino is the same before and after copy-up, and readdir's d_ino equals it.
    func testInodeNumberStableAcrossCopyUp() throws {
        try fx.layer("top").file("d/a", "a").file("b", "b")
        try fx.layer("bot").file("d/c", "c").dir("e").file("e/f", "f")
        try mountWritable(["top", "bot"])
        let before = try TreeSnapshot.walk(m(""))
        XCTAssertEqual(errnoOf(chmod(m("d/a"), 0o600)), 0)
        XCTAssertEqual(errnoOf(setxattr(m("d/c"), "user.n", "v", 1, 0)), 0)
        XCTAssertEqual(errnoOf(truncate(m("b"), 0)), 0)
        XCTAssertEqual(errnoOf(chmod(m("e"), 0o700)), 0)
        XCTAssertEqual(errnoOf(utimensat(AT_FDCWD, m("e/f"), nil, 0)), 0)
        XCTAssertTrue(exists(u("d/c")) && exists(u("e/f")))
        let after = try TreeSnapshot.walk(m(""))
        let beforeByPath = Dictionary(uniqueKeysWithValues: before.inodes.map { ($0.path, $0.stIno) })
        for p in after.inodes {
            XCTAssertEqual(p.stIno, beforeByPath[p.path], "st_ino of /\(p.path) changed by copy-up")
            XCTAssertEqual(p.dIno, p.stIno, "d_ino vs st_ino of /\(p.path)")
        }
        XCTAssertEqual(after.inodes.count, before.inodes.count)
        try finishAndCompareWithKernel()
    }
}
