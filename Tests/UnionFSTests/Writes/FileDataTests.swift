import CAttr
import CLinux
import Foundation
import Glibc
import UnionFS
import XCTest

/// Issue 4 items 1–2 on file data: sparse-aware copy-up (holes stay holes), SEEK_DATA and
/// SEEK_HOLE, fallocate, copy_file_range, truncation through an open file, utimens flags.
final class FileDataTests: WriteTestCase {
    /// A 64 MiB lower file with two 4 KiB data extents is copied up without filling its holes.
    func testCopyUpKeepsHoles() throws {
        let low = try fx.layer("low")
        try low.file("sparse", "")
        let fd = open(low.abs("sparse"), O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let block = [UInt8](repeating: 0x5a, count: 4096)
        XCTAssertEqual(pwrite(fd, block, 4096, 0), 4096)
        XCTAssertEqual(pwrite(fd, block, 4096, 32 << 20), 4096)
        XCTAssertEqual(ftruncate(fd, 64 << 20), 0)
        close(fd)
        try mountWritable(["low"])
        let w = open(m("sparse"), O_RDWR)
        XCTAssertGreaterThanOrEqual(w, 0)
        defer { close(w) }
        XCTAssertEqual(pwrite(w, "end", 3, (64 << 20) - 3), 3)
        let st = lstatOf(u("sparse"))
        XCTAssertEqual(st.st_size, 64 << 20)
        XCTAssertLessThan(st.st_blocks * 512, 1 << 20, "copy-up filled the holes: \(st.st_blocks) blocks")
        // SEEK_DATA / SEEK_HOLE through the mount see the same extents.
        XCTAssertEqual(lseek(w, 0, unionfs_SEEK_HOLE), 4096)
        XCTAssertEqual(lseek(w, 4096, unionfs_SEEK_DATA), 32 << 20)
        XCTAssertEqual(try Run.program("/usr/bin/cmp", ["-s", m("sparse"), u("sparse")]).status, 0)
        var buf = [UInt8](repeating: 0, count: 4096)
        XCTAssertEqual(pread(w, &buf, 4096, 32 << 20), 4096)
        XCTAssertEqual(buf, block)
        XCTAssertEqual(pread(w, &buf, 16, 1 << 20), 16)
        XCTAssertEqual(Array(buf.prefix(16)), [UInt8](repeating: 0, count: 16))
    }

    /// fallocate, copy_file_range between two files of the mount, and ftruncate through an
    /// open descriptor of a copied-up lower file.
    func testFallocateCopyRangeAndFtruncate() throws {
        try fx.layer("low").file("src", String(repeating: "s", count: 10000)).file("dst", "d")
        try mountWritable(["low"])
        let src = open(m("src"), O_RDONLY)
        let dst = open(m("dst"), O_RDWR)
        XCTAssertGreaterThanOrEqual(src, 0)
        XCTAssertGreaterThanOrEqual(dst, 0)
        defer { close(src); close(dst) }
        XCTAssertEqual(fallocate(dst, unionfs_FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0, String(cString: strerror(errno)))
        XCTAssertEqual(lstatOf(m("dst")).st_size, 1)
        XCTAssertEqual(fallocate(dst, 0, 0, 8192), 0)
        XCTAssertEqual(lstatOf(m("dst")).st_size, 8192)
        var inOff: off_t = 100, outOff: off_t = 0
        XCTAssertEqual(copy_file_range(src, &inOff, dst, &outOff, 5000, 0), 5000, String(cString: strerror(errno)))
        XCTAssertEqual(ftruncate(dst, 6000), 0)
        var st = stat()
        XCTAssertEqual(fstat(dst, &st), 0)
        XCTAssertEqual(st.st_size, 6000)
        let content = text(m("dst")) ?? ""
        XCTAssertEqual(content.utf8.count, 6000)
        XCTAssertTrue(content.hasPrefix(String(repeating: "s", count: 5000)))
        XCTAssertEqual(names(upperDir), ["dst"], "reading src copied it up")
        try finishAndCompareWithKernel()
    }

    /// utimensat with UTIME_OMIT keeps that time and UTIME_NOW sets the present.
    func testUtimensOmitAndNow() throws {
        try fx.layer("low").file("f", "f")
        let old = timespec(tv_sec: 1_000_000_000, tv_nsec: 0)
        var t = [old, old]
        XCTAssertEqual(utimensat(AT_FDCWD, fx.path("low") + "/f", &t, 0), 0)
        try mountWritable(["low"])
        t = [timespec(tv_sec: 0, tv_nsec: UTIME_NOW), timespec(tv_sec: 0, tv_nsec: UTIME_OMIT)]
        XCTAssertEqual(utimensat(AT_FDCWD, m("f"), &t, 0), 0)
        var st = lstatOf(m("f"))
        XCTAssertEqual(st.st_mtim.tv_sec, old.tv_sec, "UTIME_OMIT changed mtime")
        XCTAssertGreaterThan(st.st_atim.tv_sec, old.tv_sec + 1000, "UTIME_NOW did not set atime")
        t = [timespec(tv_sec: 0, tv_nsec: UTIME_OMIT), timespec(tv_sec: 0, tv_nsec: UTIME_NOW)]
        XCTAssertEqual(utimensat(AT_FDCWD, m("f"), &t, 0), 0)
        st = lstatOf(m("f"))
        XCTAssertGreaterThan(st.st_mtim.tv_sec, old.tv_sec + 1000)
        XCTAssertEqual(lstatOf(u("f")).st_mtim.tv_sec, st.st_mtim.tv_sec)
        try finishAndCompareWithKernel()
    }

    /// The markers UnionFS honours in lowers cannot be set through the mount (its own
    /// namespace's are stored escaped instead, as the kernel does: `OverlayXattrTests`); a
    /// refused or missing xattr change copies nothing up.
    func testXattrEdges() throws {
        try fx.layer("low").file("f", "f").dir("d").file("d/x", "x")
        try mountWritable(["low"])
        XCTAssertEqual(errnoOf(setxattr(m("f"), "user.overlay.opaque", "y", 1, 0)), EPERM)
        XCTAssertEqual(errnoOf(removexattr(m("f"), "user.none")), ENODATA)
        XCTAssertEqual(names(upperDir), [], "a refused or empty xattr change copied something up")
        XCTAssertEqual(errnoOf(setxattr(m("d"), "user.d", "1", 1, 0)), 0)
        XCTAssertEqual(names(u("d")), [], "an xattr on a dir copied its children up")
        XCTAssertEqual(try TreeSnapshot.xattrValue(m("d"), "user.d"), Array("1".utf8))
        XCTAssertEqual(errnoOf(removexattr(m("d"), "user.d")), 0)
        XCTAssertEqual(try TreeSnapshot.xattrNames(u("d")).filter { $0.hasPrefix("user.") }, [])
        try finishAndCompareWithKernel()
    }
}
