import Foundation
import Glibc
import UnionFS
import XCTest

/// Issue 13, as small as its reproductions: a name lost after a hard link in another directory
/// goes, link counts through the other names, and O_DIRECT writes.
final class ReliabilityRegressionTests: WriteTestCase {
    /// Defect 1: `echo hi > f; mkdir -p d/e; ln f d/e/g; rm d/e/g; cat f` failed with ENOENT.
    func testNameSurvivesRemovalOfLinkInAnotherDirectory() throws {
        try fx.layer("low").file("lf", "lower")
        try mountWritable(["low"])
        try sh("echo hi > f; mkdir -p d/e; ln f d/e/g; rm d/e/g", in: m(""))
        XCTAssertEqual(text(m("f")), "hi\n", "f lost after its link in d/e went")
        // The same through a rename of the other name and through a lower file.
        try sh("ln f d/e/h; mv d/e/h d/i; rm d/i", in: m(""))
        XCTAssertEqual(text(m("f")), "hi\n", "f lost after its renamed link went")
        try sh("ln lf d/e/lg; rm lf", in: m(""))
        XCTAssertEqual(text(m("d/e/lg")), "lower", "d/e/lg lost after lf went")
        try sh("ln d/e/lg lf2; rm d/e/lg", in: m(""))
        XCTAssertEqual(text(m("lf2")), "lower")
        XCTAssertEqual(lstatOf(m("lf2")).st_nlink, 1)
        try finishAndCompareWithKernel()
    }

    /// Hard links already in the upper before the mount: both names found, the one found last
    /// removed, the other still reaches the file with nlink 1.
    func testHardLinkAlreadyInTheUpper() throws {
        _ = try fx.layer("low")
        lowers = [fx.path("low")]
        upperDir = try makeDir("pre-upper")
        workDir = try makeDir("pre-work")
        XCTAssertEqual(mkdir(upperDir + "/d", 0o755), 0)
        XCTAssertTrue(FileManager.default.createFile(atPath: upperDir + "/x", contents: Data("pre\n".utf8)))
        XCTAssertEqual(link(upperDir + "/x", upperDir + "/d/y"), 0)
        mount = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upperDir),workdir=\(workDir)")
        XCTAssertEqual(text(m("x")), "pre\n")
        XCTAssertEqual(text(m("d/y")), "pre\n")
        XCTAssertEqual(lstatOf(m("x")).st_nlink, 2)
        XCTAssertEqual(errnoOf(unlink(m("d/y"))), 0)
        XCTAssertEqual(text(m("x")), "pre\n", "x lost after d/y went")
        XCTAssertEqual(lstatOf(m("x")).st_nlink, 1)
        try finishAndCompareWithKernel()
    }

    /// Defect 2: after `ln a d/b; rm d/b` every remaining name shows the new link count, also
    /// when the kernel asks the daemon each time (timeout=0) instead of its cache.
    func testLinkCountThroughTheOtherNameAfterUnlink() throws {
        _ = try fx.layer("low")
        for timeout in ["", ",timeout=0"] {
            try mountWritable(["low"], extraOptions: timeout, name: "fuse\(timeout.isEmpty ? "" : "-t0")")
            try sh("echo x > a; mkdir d; ln a c; ln a d/b", in: m(""))
            for name in ["a", "d/b", "c"] { XCTAssertEqual(lstatOf(m(name)).st_nlink, 3, name + timeout) }
            XCTAssertEqual(errnoOf(unlink(m("d/b"))), 0)
            for name in ["a", "c"] { XCTAssertEqual(lstatOf(m(name)).st_nlink, 2, name + timeout) }
            XCTAssertEqual(errnoOf(unlink(m("a"))), 0)
            XCTAssertEqual(lstatOf(m("c")).st_nlink, 1, "c" + timeout)
            XCTAssertEqual(text(m("c")), "x\n")
            mount.stop()
        }
    }

    /// Defect 4: an aligned O_DIRECT write and read through the mount succeed (they failed with
    /// EINVAL: the daemon wrote the kernel's unaligned request buffer to an O_DIRECT file).
    func testAlignedDirectWriteAndRead() throws {
        _ = try fx.layer("low")
        try mountWritable(["low"])
        let fd = open(m("dio"), O_RDWR | O_CREAT | O_DIRECT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0, String(cString: strerror(errno)))
        guard fd >= 0 else { return }
        defer { close(fd) }
        let size = 16384
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buf.deallocate() }
        for i in 0..<size { buf[i] = UInt8(truncatingIfNeeded: i * 7) }
        XCTAssertEqual(pwrite(fd, buf.baseAddress, size, 0), size, "direct write: \(String(cString: strerror(errno)))")
        let back = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { back.deallocate() }
        XCTAssertEqual(pread(fd, back.baseAddress, size, 0), size, "direct read: \(String(cString: strerror(errno)))")
        XCTAssertTrue(memcmp(buf.baseAddress!, back.baseAddress!, size) == 0, "direct read differs")
        XCTAssertEqual(lstatOf(u("dio")).st_size, off_t(size))
    }
}
