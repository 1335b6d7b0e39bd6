import Foundation
import Glibc
import XCTest

/// Issue 13: a lower file open read-only while another descriptor copies it up and writes.
/// Kernel overlayfs (since Linux 4.19) moves such readers to the upper file: they see the data
/// written after the copy-up, and fstat shows its size. The same through unionfs-swift.
final class OpenDuringCopyUpTests: WriteTestCase {
    func testReaderOpenedBeforeCopyUpSeesLaterWrites() throws {
        try fx.layer("low").file("f", "old data").file("g", "other old")
        try mountWritable(["low"])
        let k = try kernelMount(lowers: lowers, upper: try makeDir("k-upper"), work: try makeDir("k-work"), name: "k")
        for root in [mount.mountPoint, k.mountPoint] {
            for (name, readFirst) in [("f", true), ("g", false)] {
                let what = "\(root == k.mountPoint ? "kernel" : "unionfs") \(name)"
                let reader = open(root + "/" + name, O_RDONLY)
                XCTAssertGreaterThanOrEqual(reader, 0, what)
                defer { close(reader) }
                var buf = [UInt8](repeating: 0, count: 64)
                if readFirst { XCTAssertEqual(pread(reader, &buf, 64, 0), 8 + (name == "g" ? 1 : 0), what) }
                let writer = open(root + "/" + name, O_WRONLY | O_TRUNC)
                XCTAssertGreaterThanOrEqual(writer, 0, what)
                XCTAssertEqual(write(writer, "new data, longer", 16), 16, what)
                close(writer)
                // Not from the page cache: ask for the data again.
                _ = posix_fadvise(reader, 0, 0, POSIX_FADV_DONTNEED)
                let n = pread(reader, &buf, 64, 0)
                XCTAssertEqual(String(decoding: buf.prefix(max(n, 0)), as: UTF8.self), "new data, longer", what)
                var st = stat()
                XCTAssertEqual(fstat(reader, &st), 0, what)
                XCTAssertEqual(st.st_size, 16, "fstat size through the old reader: " + what)
            }
        }
    }
}
