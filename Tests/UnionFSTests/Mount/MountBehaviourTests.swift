import CAttr
import Foundation
import Glibc
import XCTest

/// Inode numbers, hidden overlay xattrs and read-only behaviour of a mounted unionfs-swift.
final class MountBehaviourTests: MountTestCase {
    private func buildFixture() throws {
        try fx.layer("top").file("a", "a").dir("d", opaque: "x").xattrWhiteout("d/w").file("d/x", "x")
            .dir("opq", opaque: "y").file("opq/o", "o").symlink("link", to: "a")
            .file("tagged", "t", xattrs: ["user.visible": "yes"])
            .setXattr("tagged", "trusted.overlay.secret", "hidden").setXattr("tagged", "trusted.other", "shown")
            .whiteout("gone")
        try fx.layer("bot").file("a", "bottom-a").file("d/w", "w").file("d/y", "y").dir("d/sub").file("d/sub/z", "z")
            .file("gone", "g").file("opq/hidden", "h").file("b", "b")
    }

    /// Started with a soft limit of 256 open files (a shell's default is 1024), the daemon still
    /// serves a walk over more directories than that: it raises its limit to the hard one.
    func testWalkPastALowOpenFileLimit() throws {
        let layer = try fx.layer("many")
        for i in 0..<600 { try layer.dir("d\(i / 30)/e\(i)").file("d\(i / 30)/e\(i)/f", "f") }
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        var low = saved
        low.rlim_cur = 256
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low), 0)
        let started = Result { try fuseMount(lowerdirOption(["many"])) }
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved), 0)
        let m = try started.get()
        let r = try Run.program("/usr/bin/find", [m.mountPoint, "-name", "f"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 600)
    }

    /// With a hard limit of 512 open files, a walk over 630 directories present in three
    /// layers (1,890 layer directories) works: nodes give their descriptors back past the
    /// budget and are found again by name when used. Then every file reads right.
    func testWalkPastTheHardOpenFileLimit() throws {
        for (k, name) in ["l0", "l1", "l2"].enumerated() {
            let layer = try fx.layer(name)
            for i in 0..<600 { try layer.file("d\(i / 30)/e\(i)/f", "\(name)\n").file("d\(i / 30)/e\(i)/g\(k)", "") }
        }
        let m = try fuseMount(lowerdirOption(["l0", "l1", "l2"]), launcher: ["/usr/bin/prlimit", "--nofile=512:512", "--"])
        let r = try Run.program("/usr/bin/find", [m.mountPoint, "-type", "f"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 600 * 4)
        let cat = try Run.program("/bin/sh", ["-c", "cat \(m.mountPoint)/d*/e*/f | sort | uniq -c"], timeout: 60)
        XCTAssertEqual(cat.status, 0, cat.stderr)
        XCTAssertEqual(cat.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "600 l0")
    }

    /// d_ino from readdir equals st_ino from stat for every entry; st_ino is stable and unique.
    func testInodeNumbersOnMount() throws {
        try buildFixture()
        let m = try fuseMount(lowerdirOption(["top", "bot"]))
        let first = try TreeSnapshot.walk(m.mountPoint)
        XCTAssertEqual(first.inodes.count, 11)
        for p in first.inodes {
            XCTAssertEqual(p.dIno, p.stIno, "d_ino vs st_ino of /\(p.path)")
        }
        var owners: [UInt64: String] = [:]
        for p in first.inodes {
            if let other = owners[p.stIno] { XCTFail("st_ino \(p.stIno) shared by /\(other) and /\(p.path)") }
            owners[p.stIno] = p.path
        }
        // A second stat of every path (attributes may be cached or not) reports the same numbers.
        for p in first.inodes {
            var st = stat()
            XCTAssertEqual(lstat(m.mountPoint + "/" + p.path, &st), 0)
            XCTAssertEqual(UInt64(st.st_ino), p.stIno, "st_ino of /\(p.path) changed")
        }
        let second = try TreeSnapshot.walk(m.mountPoint)
        XCTAssertEqual(second.inodes.map(\.stIno), first.inodes.map(\.stIno))
        var rootSt = stat(), dotSt = stat()
        XCTAssertEqual(lstat(m.mountPoint, &rootSt), 0)
        XCTAssertEqual(lstat(m.mountPoint + "/d/.", &dotSt), 0)
        XCTAssertEqual(UInt64(dotSt.st_ino), owners.first { $0.value == "d" }?.key)
        // One st_dev for the whole mount.
        var devs = Set<UInt64>()
        for p in first.inodes {
            var st = stat()
            if lstat(m.mountPoint + "/" + p.path, &st) == 0 { devs.insert(UInt64(st.st_dev)) }
        }
        XCTAssertEqual(devs, [UInt64(rootSt.st_dev)])
    }

    /// `trusted.overlay.*` xattrs are not visible through getxattr/listxattr on the mount.
    func testOverlayXattrsHidden() throws {
        try buildFixture()
        let m = try fuseMount(lowerdirOption(["top", "bot"]))
        let snap = try TreeSnapshot.walk(m.mountPoint)
        XCTAssertNil(snap.entries["d/w"])
        for path in snap.entries.keys {
            let names = try TreeSnapshot.xattrNames(m.mountPoint + "/" + path)
            XCTAssertFalse(names.contains { $0.hasPrefix("trusted.overlay.") }, "/\(path) lists \(names)")
        }
        for (path, name) in [("d", "trusted.overlay.opaque"), ("opq", "trusted.overlay.opaque"),
                             ("tagged", "trusted.overlay.secret"), ("", "trusted.overlay.opaque")] {
            var buf = [UInt8](repeating: 0, count: 64)
            let n = lgetxattr(m.mountPoint + "/" + path, name, &buf, buf.count)
            let e = errno
            XCTAssertEqual(n, -1, "getxattr \(name) on /\(path) should fail")
            XCTAssertEqual(e, ENODATA, "getxattr \(name) on /\(path): \(String(cString: strerror(e)))")
        }
        // Positive controls: other xattrs are visible.
        XCTAssertEqual(try TreeSnapshot.xattrValue(m.mountPoint + "/tagged", "user.visible"), Array("yes".utf8))
        XCTAssertEqual(try TreeSnapshot.xattrValue(m.mountPoint + "/tagged", "trusted.other"), Array("shown".utf8))
        XCTAssertTrue(try TreeSnapshot.xattrNames(m.mountPoint + "/tagged").contains("trusted.other"))
    }

    /// Every write on a lowerdir-only mount fails with EROFS, and the layers stay as they were.
    func testWritesFailWithEROFS() throws {
        try buildFixture()
        let before = try TreeSnapshot.walk(fx.root)
        let m = try fuseMount(lowerdirOption(["top", "bot"]))
        let mp = m.mountPoint
        // Read-only to the VFS too, as kernel overlayfs without an upper.
        var vfs = statvfs()
        XCTAssertEqual(statvfs(mp, &vfs), 0)
        XCTAssertNotEqual(vfs.f_flag & UInt(ST_RDONLY), 0, "statvfs: ST_RDONLY")
        let mountLine = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
            .split(separator: "\n").first { $0.split(separator: " ").dropFirst().first.map(String.init) == mp }
        XCTAssertEqual(mountLine?.split(separator: " ").dropFirst(3).first?.split(separator: ",").first, "ro",
                       "/proc/self/mounts: \(mountLine ?? "no line")")
        func expectEROFS(_ what: String, _ rc: Int32) {
            let e = errno
            XCTAssertEqual(rc, -1, "\(what) should fail")
            if rc == -1 { XCTAssertEqual(e, EROFS, "\(what): \(String(cString: strerror(e)))") }
        }
        let fd1 = open(mp + "/new", O_WRONLY | O_CREAT, 0o644)
        expectEROFS("create", fd1 < 0 ? -1 : 0); if fd1 >= 0 { close(fd1) }
        let fd2 = open(mp + "/a", O_WRONLY)
        expectEROFS("open existing for write", fd2 < 0 ? -1 : 0); if fd2 >= 0 { close(fd2) }
        let fd3 = open(mp + "/a", O_RDONLY | O_TRUNC)
        expectEROFS("O_TRUNC", fd3 < 0 ? -1 : 0); if fd3 >= 0 { close(fd3) }
        expectEROFS("mkdir", mkdir(mp + "/newdir", 0o755))
        expectEROFS("unlink", unlink(mp + "/a"))
        expectEROFS("rmdir", rmdir(mp + "/opq"))
        expectEROFS("rename", rename(mp + "/a", mp + "/renamed"))
        expectEROFS("symlink", symlink("a", mp + "/newlink"))
        expectEROFS("link", link(mp + "/a", mp + "/hardlink"))
        expectEROFS("chmod", chmod(mp + "/a", 0o600))
        expectEROFS("chown", chown(mp + "/a", 1, 1))
        expectEROFS("truncate", truncate(mp + "/a", 0))
        expectEROFS("setxattr", setxattr(mp + "/a", "user.new", "v", 1, 0))
        expectEROFS("removexattr", removexattr(mp + "/tagged", "user.visible"))
        expectEROFS("mknod", mknod(mp + "/fifo", S_IFIFO | 0o644, 0))
        // Reads still work.
        XCTAssertEqual(try String(contentsOfFile: mp + "/a", encoding: .utf8), "a")
        m.stop()
        XCTAssertTreesEqual(try TreeSnapshot.walk(fx.root), before, "layers changed by a read-only mount")
    }

    /// Reading a file in pieces at odd offsets returns the right bytes.
    func testReadsAtOffsets() throws {
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 31 + $0 / 256) }
        try fx.layer("top").fileBytes("data", bytes)
        try fx.layer("bot").file("data", "shadowed")
        let m = try fuseMount(lowerdirOption(["top", "bot"]))
        let fd = open(m.mountPoint + "/data", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        for (offset, count) in [(0, 10), (4095, 3), (131_071, 70_000), (299_990, 100), (300_000, 5)] {
            var buf = [UInt8](repeating: 0, count: count)
            let n = pread(fd, &buf, count, off_t(offset))
            let expected = Array(bytes[min(offset, bytes.count)..<min(offset + count, bytes.count)])
            XCTAssertEqual(n, expected.count, "pread at \(offset)")
            XCTAssertEqual(Array(buf.prefix(max(n, 0))), expected, "bytes at \(offset)")
        }
    }
}
