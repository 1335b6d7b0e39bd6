import CLinux
import Foundation
import Glibc
import UnionFS
import XCTest

/// A copy-up from a lower layer on one filesystem to an upper on another, where
/// `copy_file_range` refuses (`EXDEV`) and the data goes through `sendfile`: the copy holds the
/// lower's bytes at their offsets (the data extents each at its place), its holes stay holes, and
/// kernel overlayfs over the same two filesystems copies the same bytes.
final class CrossFilesystemCopyUpTests: MountTestCase {
    func testCopyUpBetweenTwoFilesystemsKeepsDataAndHoles() throws {
        let lowerFS = try tmpfs("lowerfs"), upperFS = try tmpfs("upperfs")
        for d in ["up", "work", "kup", "kwork", "m", "km"] {
            XCTAssertEqual(mkdir(upperFS + "/" + d, 0o755), 0, d)
        }
        // 3 MiB of data, a 5 MiB hole, then 12,345 bytes: two extents, an odd size.
        let head = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }
        let tail = (0..<12_345).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        let path = lowerFS + "/big"
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(head.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }, head.count)
        XCTAssertEqual(tail.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 8 << 20) }, tail.count)
        close(fd)
        let expected = Data(head) + Data(count: 5 << 20) + Data(tail) + Data("x".utf8)

        let fuse = try FuseMount.start(options: "lowerdir=\(lowerFS),upperdir=\(upperFS)/up,workdir=\(upperFS)/work",
                                       mountPoint: upperFS + "/m")
        addCleanup { fuse.stop() }
        let kernel = try KernelOverlay(lowers: [lowerFS], upper: upperFS + "/kup", work: upperFS + "/kwork",
                                       mountPoint: upperFS + "/km")
        addCleanup { kernel.stop() }
        for m in ["m", "km"] {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(upperFS)/\(m)/big"))
            try h.seekToEnd(); try h.write(contentsOf: Data("x".utf8)); try h.close()
        }
        for up in ["up", "kup"] {
            let copy = try Data(contentsOf: URL(fileURLWithPath: "\(upperFS)/\(up)/big"))
            XCTAssertEqual(copy.count, expected.count, up)
            XCTAssertTrue(copy == expected, "\(up): the copy's bytes differ from the lower's")
        }
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: upperFS + "/m/big")) == expected)
        // The hole stays a hole in our copy: the first one starts where the head ends.
        let copy = open(upperFS + "/up/big", O_RDONLY)
        XCTAssertGreaterThanOrEqual(copy, 0)
        XCTAssertEqual(lseek(copy, 0, unionfs_SEEK_HOLE), off_t(3 << 20))
        XCTAssertEqual(lseek(copy, off_t(3 << 20), unionfs_SEEK_DATA), off_t(8 << 20))
        close(copy)
    }

    /// A fresh tmpfs mounted under the test's directory, unmounted at teardown.
    private func tmpfs(_ name: String) throws -> String {
        let dir = try makeDir(name)
        guard Glibc.mount("tmpfs", dir, "tmpfs", 0, "size=64m") == 0 else {
            throw XCTSkip("mount tmpfs: \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(dir) }
        return dir
    }
}
