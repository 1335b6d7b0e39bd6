import Foundation
import Glibc
import UnionFS
import XCTest

/// Issue 13 defect 4: O_DIRECT through the mount, on a tmpfs upper and on an ext4 upper (a loop
/// image): aligned direct writes and reads succeed, unaligned ones fail exactly as on the
/// upper's own filesystem, and kernel overlayfs over the same filesystem gives the same answers
/// and the same data, for a new file and for a lower file copied up by its direct open.
final class DirectIOTests: MountTestCase {
    func testDirectIOOnTmpfsUpper() throws {
        let base = try makeDir("tmpfs")
        guard Glibc.mount("tmpfs", base, "tmpfs", 0, "size=64m") == 0 else {
            XCTFail("mount tmpfs: \(String(cString: strerror(errno)))"); return
        }
        addCleanup { MountTable.forceUnmount(base) }
        try compareDirectIO(on: base)
    }

    func testDirectIOOnExt4Upper() throws {
        let image = tmp + "/ext4.img", base = try makeDir("ext4")
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: nil))
        XCTAssertEqual(truncate(image, 64 << 20), 0)
        let mk = try Run.program("/usr/sbin/mkfs.ext4", ["-q", "-F", image], timeout: 60)
        XCTAssertEqual(mk.status, 0, mk.stderr)
        let m = try Run.program("/usr/bin/mount", ["-o", "loop", image, base], timeout: 30)
        guard m.status == 0 else { XCTFail("mount -o loop: \(m.stderr)"); return }
        addCleanup { MountTable.forceUnmount(base) }
        try compareDirectIO(on: base)
    }

    /// Runs the same direct I/O on the plain filesystem at `base`, on unionfs-swift and on kernel
    /// overlayfs with upper dirs there, and requires the same results and contents.
    private func compareDirectIO(on base: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for d in ["low", "up", "work", "kup", "kwork", "plain", "m", "km"] {
            XCTAssertEqual(mkdir(base + "/" + d, 0o755), 0, d)
        }
        let lowData = (0..<16384).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for dir in ["low", "plain"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: "\(base)/\(dir)/lowfile", contents: Data(lowData)))
        }
        let fuse = try FuseMount.start(options: "lowerdir=\(base)/low,upperdir=\(base)/up,workdir=\(base)/work",
                                       mountPoint: base + "/m")
        addCleanup { fuse.stop() }
        let kernel = try KernelOverlay(lowers: [base + "/low"], upper: base + "/kup", work: base + "/kwork",
                                       mountPoint: base + "/km")
        addCleanup { kernel.stop() }
        for name in ["new", "lowfile"] {
            let plain = Self.directScript(base + "/plain/" + name)
            let mine = Self.directScript(base + "/m/" + name)
            let theirs = Self.directScript(base + "/km/" + name)
            XCTAssertEqual(mine, theirs, "\(name): unionfs vs kernel overlayfs", file: file, line: line)
            XCTAssertEqual(mine, plain, "\(name): unionfs vs the upper's filesystem", file: file, line: line)
            XCTAssertTrue(mine.contains("write 4096@0 = 4096"), "\(name): \(mine)", file: file, line: line)
            if ProcessInfo.processInfo.environment["UNIONFS_TEST_VERBOSE"] != nil { print(name, mine) }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: base + "/up/lowfile")),
                       try Data(contentsOf: URL(fileURLWithPath: base + "/kup/lowfile")), "upper copies differ")
    }

    /// Direct writes and reads of aligned and unaligned offsets and lengths (the buffer itself
    /// is always page-aligned: its alignment does not reach a FUSE daemon); one line per call
    /// with its result or errno, then the whole content (read without O_DIRECT).
    static func directScript(_ path: String) -> [String] {
        var out: [String] = []
        let fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0o644)
        guard fd >= 0 else { return ["open: \(String(cString: strerror(errno)))"] }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4096)
        defer { buf.deallocate() }
        func result(_ n: Int) -> String { n < 0 ? String(cString: strerror(errno)) : String(n) }
        for (i, (off, len)) in [(0, 4096), (4096, 8192), (0, 100), (100, 4096), (512, 512), (8192, 4097)].enumerated() {
            for k in 0..<len { buf[k] = UInt8(truncatingIfNeeded: k &+ i &* 53) }
            out.append("write \(len)@\(off) = \(result(pwrite(fd, buf.baseAddress, len, off_t(off))))")
        }
        for (off, len) in [(0, 4096), (0, 100), (512, 4096), (4096, 8192), (0, 65536), (12288, 4096)] {
            let n = pread(fd, buf.baseAddress, len, off_t(off))
            let sum = n > 0 ? (0..<n).reduce(0) { ($0 &* 31) &+ Int(buf[$1]) } : 0
            out.append("read \(len)@\(off) = \(result(n)) sum \(sum)")
        }
        close(fd)
        let all = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
        out.append("content \(all.count) bytes, sum \(all.reduce(0) { ($0 &* 31) &+ Int($1) })")
        return out
    }
}
