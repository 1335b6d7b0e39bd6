import Foundation
import Glibc
import XCTest

/// Issue 4, a full upper: the caller gets ENOSPC, lower data is untouched, and no partial
/// copy-up is visible in the merged view or the upper.
final class ENOSPCTests: WriteTestCase {
    func testCopyUpIntoFullUpperFailsCleanly() throws {
        let low = try fx.layer("low")
        let data = (0..<(10 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 12)) }
        try low.fileBytes("big", data).file("small", "small").dir("d")
        let small = try makeDir("small-fs")
        XCTAssertEqual(Glibc.mount("tmpfs", small, "tmpfs", 0, "size=8m"), 0, String(cString: strerror(errno)))
        addCleanup { MountTable.forceUnmount(small) }
        lowers = [low.path]
        upperDir = small + "/upper"
        workDir = small + "/work"
        XCTAssertEqual(Glibc.mkdir(upperDir, 0o755), 0)
        XCTAssertEqual(Glibc.mkdir(workDir, 0o755), 0)
        mount = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upperDir),workdir=\(workDir)")

        let fd = open(m("big"), O_WRONLY | O_APPEND)
        let e = errno
        if fd >= 0 { close(fd) }
        XCTAssertEqual(fd, -1, "copy-up of 10 MiB into 8 MiB succeeded")
        XCTAssertEqual(e, ENOSPC, "copy-up failure: \(String(cString: strerror(e)))")
        XCTAssertFalse(exists(u("big")), "partial copy-up in the upper")
        XCTAssertEqual(names(workDir + "/work"), [], "partial copy-up left in the workdir")
        XCTAssertEqual(lstatOf(m("big")).st_size, off_t(data.count))
        XCTAssertEqual(try TreeSnapshot.digest(m("big")), try TreeSnapshot.digest(low.abs("big")))
        XCTAssertEqual(lstatOf(low.abs("big")).st_size, off_t(data.count), "lower changed")

        // The space was given back: small changes still work.
        put(m("small"), "changed")
        XCTAssertEqual(text(m("small")), "changed")
        put(m("d/new"), "new")
        // Writing a new file past the space fails with ENOSPC too, and leaves what was written.
        let wfd = open(m("fill"), O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(wfd, 0)
        var werr: Int32 = 0
        data.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(wfd, b.baseAddress! + off, min(1 << 20, b.count - off))
                if n < 0 { werr = errno; break }
                off += n
            }
        }
        if fsync(wfd) != 0 && werr == 0 { werr = errno }
        close(wfd)
        XCTAssertEqual(werr, ENOSPC)
        XCTAssertEqual(errnoOf(unlink(m("fill"))), 0)
        XCTAssertEqual(names(m("")), ["big", "d", "small"])
        try finishAndCompareWithKernel()
    }
}
