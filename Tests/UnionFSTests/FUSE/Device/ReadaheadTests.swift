import Foundation
import Glibc
import UnionFS
import XCTest

/// The mount's readahead (`readahead=KIB`, `MountReadahead`): the kernel's 128 KiB unless asked
/// otherwise; as asked (root), so a sequential read through the daemon comes in fewer, larger
/// READs; asked for without the right to set it, the mount fails.
final class ReadaheadTests: MountTestCase {
    /// 4 MiB that differ at every 4 KiB page.
    private let content: [UInt8] = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }

    /// The kernel's readahead of the mount at `path`, from its backing device info.
    private func readaheadKiB(_ path: String) throws -> Int? {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        let dev = UInt64(st.st_dev)
        let major = (dev >> 8) & 0xfff | (dev >> 32) & ~UInt64(0xfff)
        let minor = dev & 0xff | (dev >> 12) & ~UInt64(0xff)
        let text = try String(contentsOfFile: "/sys/class/bdi/\(major):\(minor)/read_ahead_kb", encoding: .utf8)
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The READs the daemon has answered (`unionfs-swift stats`).
    private func reads(_ m: FuseMount) throws -> Int {
        let r = try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10)
        XCTAssertEqual(r.status, 0, r.stderr)
        for line in r.stdout.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 5, words[0] == "READ", let n = Int(words[1]) { return n }
        }
        return 0
    }

    /// Reads `path` 64 KiB at a time, as `cat` and `cp` do: the kernel reads ahead of it.
    private func readSequentially(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { XCTFail("cannot open \(path): errno \(errno)"); return [] }
        defer { close(fd) }
        var out: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// A writable mount with `content` as the lower file `big`, read through the daemon (not
    /// passed through), with `options` added.
    private func mountWithBigLowerFile(_ options: String = "") throws -> FuseMount {
        try fx.layer("low").fileBytes("big", content)
        let upper = try makeDir("upper"), work = try makeDir("work")
        return try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),passthrough=off" + options)
    }

    /// Without the option the kernel's own stays: 128 KiB, 32 READs for 4 MiB.
    func testDefaultIsTheKernels() throws {
        let m = try mountWithBigLowerFile()
        XCTAssertEqual(try readaheadKiB(m.mountPoint), 128)
        XCTAssertEqual(readSequentially(m.mountPoint + "/big"), content)
        XCTAssertGreaterThanOrEqual(try reads(m), 32, "4 MiB at 128 KiB at most per READ")
    }

    /// 1 MiB (one READ's size): 4 MiB in about 8 READs, as the window ramps up.
    func testLargeReadaheadMeansFewerReads() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("readahead= needs root") }
        let m = try mountWithBigLowerFile(",readahead=1024")
        XCTAssertEqual(try readaheadKiB(m.mountPoint), 1024)
        XCTAssertEqual(readSequentially(m.mountPoint + "/big"), content)
        let n = try reads(m)
        XCTAssertGreaterThan(n, 0)
        XCTAssertLessThanOrEqual(n, 12, "4 MiB read in \(n) READs")
    }

    func testOptionSetsIt() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("readahead= needs root") }
        try fx.layer("low").fileBytes("big", content)
        let m = try fuseMount(lowerdirOption(["low"]) + ",passthrough=off,readahead=64")
        XCTAssertEqual(try readaheadKiB(m.mountPoint), 64)
        XCTAssertEqual(readSequentially(m.mountPoint + "/big"), content)
        XCTAssertGreaterThanOrEqual(try reads(m), 64, "4 MiB at 64 KiB at most per READ")
    }

    /// Asked for by a process that may not set it: the mount fails with the reason, and
    /// nothing is mounted.
    func testOptionWithoutRootFails() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("needs root to run as another user") }
        try fx.layer("low").file("f", "x")
        chmod(tmp, 0o755)
        let mnt = try makeDir("mnt")
        chmod(mnt, 0o777)
        let r = try Run.program("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                     TestEnvironment.binary, "-f", "-o", lowerdirOption(["low"]) + ",readahead=256", mnt],
                                timeout: 20)
        if MountTable.isMounted(mnt) { MountTable.forceUnmount(mnt) }
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.stdout + r.stderr).contains("readahead=256 cannot be honoured"), r.stdout + r.stderr)
        XCTAssertFalse(MountTable.isMounted(mnt))
    }
}
