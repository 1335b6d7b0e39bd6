import CLinux
import Foundation
import Glibc
import UnionFS
import XCTest

/// A copy-up from a lower layer on one filesystem to an upper on another, where
/// `copy_file_range` refuses (`EXDEV`) and the data goes through `sendfile`: the copy holds the
/// lower's bytes at their offsets (the data extents each at its place), its holes stay holes, and
/// kernel overlayfs over the same two filesystems copies the same bytes. Also the copy in chunks
/// (the durable copy-up of a file over 8 MiB), between two filesystems and within one.
final class CrossFilesystemCopyUpTests: MountTestCase {
    func testCopyUpBetweenTwoFilesystemsKeepsDataAndHoles() throws {
        // 3 MiB of data, a 5 MiB hole, then 12,345 bytes: two extents, an odd size.
        try copyUp(extents: [(0, 3 << 20), (8 << 20, 12_345)])
    }

    /// A durable copy-up hands its data to writeback every 8 MiB (`DataCopy.EarlyWriteback`),
    /// so the copy goes in calls of at most 8 MiB: extents that start and end off those
    /// boundaries, one of them over several, come out whole.
    func testCopyUpInChunksKeepsDataAndHoles() throws {
        try copyUp(extents: [(0, (19 << 20) + 4096), (24 << 20, (9 << 20) + 777)])
    }

    /// The same within one filesystem, where the chunks go through `copy_file_range`.
    func testCopyUpInChunksWithinOneFilesystem() throws {
        try copyUp(extents: [(4096, (17 << 20) + 1), (20 << 20, (8 << 20) + 8192)], oneFilesystem: true)
    }

    /// Writes a lower file made of `extents` (offset, length) of data with holes between them,
    /// appends a byte to it through our mount and through kernel overlayfs, and compares.
    private func copyUp(extents: [(Int, Int)], oneFilesystem: Bool = false) throws {
        let upperFS = try tmpfs("upperfs")
        let lowerFS = oneFilesystem ? upperFS + "/lower" : try tmpfs("lowerfs")
        if oneFilesystem { XCTAssertEqual(mkdir(lowerFS, 0o755), 0) }
        for d in ["up", "work", "kup", "kwork", "m", "km"] {
            XCTAssertEqual(mkdir(upperFS + "/" + d, 0o755), 0, d)
        }
        let path = lowerFS + "/big"
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var expected = Data()
        for (n, (offset, length)) in extents.enumerated() {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* (7 + 6 * n) &+ $0 >> 12 &+ n) }
            XCTAssertEqual(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }, length)
            expected += Data(count: offset - expected.count) + Data(bytes)
        }
        close(fd)
        expected += Data("x".utf8)

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
        // Each hole stays a hole in our copy: it starts where an extent ends.
        let copy = open(upperFS + "/up/big", O_RDONLY)
        XCTAssertGreaterThanOrEqual(copy, 0)
        for (n, (offset, length)) in extents.enumerated().dropLast() {
            let dataEnd = off_t((offset + length + 4095) / 4096 * 4096)
            XCTAssertEqual(lseek(copy, off_t(offset), unionfs_SEEK_HOLE), dataEnd, "hole after extent \(n)")
            XCTAssertEqual(lseek(copy, dataEnd, unionfs_SEEK_DATA), off_t(extents[n + 1].0), "extent \(n + 1)")
        }
        close(copy)
    }

    /// A fresh tmpfs mounted under the test's directory, unmounted at teardown.
    private func tmpfs(_ name: String) throws -> String {
        let dir = try makeDir(name)
        guard Glibc.mount("tmpfs", dir, "tmpfs", 0, "size=160m") == 0 else {
            throw XCTSkip("mount tmpfs: \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(dir) }
        return dir
    }
}
