import Foundation
import Glibc
import XCTest

/// fio, a tool nobody here wrote, as the judge of file data: its jobs write blocks carrying
/// checksums through the mount, then read every block back and check it. Here several I/O
/// paths at once (mmap, `pwrite`, `O_DIRECT`, io_uring, libaio) work on files that start in a
/// lower layer, so the copy-up happens under concurrent I/O. Over io_uring in the CI's second
/// pass too (`UNIONFS_TEST_URING`). What must hold: every block reads back as written, the lower
/// file is untouched, and kernel overlayfs over the same upper shows the same bytes.
final class FioVerifyTests: MountTestCase {
    private static let fio = "/usr/bin/fio"
    private static let fileSize = 8 << 20

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard FileManager.default.isExecutableFile(atPath: Self.fio) else {
            throw XCTSkip("fio is not installed (scripts/setup.sh installs it)")
        }
    }

    /// Four jobs, four ways in, one 8 MiB lower file: each job owns a quarter.
    func testFourIOPathsOnOneCopiedUpFile() throws {
        try verifySharedFile(extraOptions: "")
    }

    /// The same with the kernel's writeback cache, where data reaches the daemon as WRITEs of
    /// dirty pages (no passthrough) and the mmap job's pages go through the same cache.
    func testFourIOPathsOnOneCopiedUpFileWithWritebackCache() throws {
        try verifySharedFile(extraOptions: ",writeback=1")
    }

    /// Four jobs on four lower files, blocks of 512 B to 64 KiB at random offsets, 16 in flight.
    func testRandomSizedAsyncWritesOnFourCopiedUpFiles() throws {
        let (m, upper) = try mountWithLowerFiles(["job.0.0", "job.1.0", "job.2.0", "job.3.0"], extraOptions: "")
        try runFio("""
            [job]
            directory=\(m.mountPoint)
            size=\(Self.fileSize)
            numjobs=4
            rw=randwrite
            bsrange=512-64k
            ioengine=libaio
            iodepth=16
            verify=md5
            verify_fatal=1
            verify_state_save=0
            """)
        for i in 0..<4 { XCTAssertEqual(fileSize(upper + "/job.\(i).0"), Self.fileSize, "job.\(i).0 was copied up") }
    }

    private func verifySharedFile(extraOptions: String) throws {
        let (m, upper) = try mountWithLowerFiles(["shared"], extraOptions: extraOptions)
        let lowerBefore = try Data(contentsOf: URL(fileURLWithPath: fx.path("base") + "/shared"))
        let quarter = Self.fileSize / 4
        try runFio("""
            [global]
            directory=\(m.mountPoint)
            filename=shared
            size=\(quarter)
            bs=4k
            verify=crc32c
            verify_fatal=1
            verify_state_save=0
            [mmap]
            offset=0
            ioengine=mmap
            rw=randwrite
            [pwrite]
            offset=\(quarter)
            ioengine=psync
            rw=randwrite
            [direct]
            offset=\(2 * quarter)
            ioengine=psync
            direct=1
            rw=randwrite
            [uring]
            offset=\(3 * quarter)
            ioengine=io_uring
            iodepth=8
            rw=randwrite
            """)
        let merged = try Data(contentsOf: URL(fileURLWithPath: m.mountPoint + "/shared"))
        XCTAssertEqual(merged.count, Self.fileSize)
        XCTAssertNotEqual(merged, lowerBefore, "fio's blocks should be in the file")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fx.path("base") + "/shared")), lowerBefore,
                       "the lower file must not change")
        m.stop()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: upper + "/shared")), merged,
                       "the upper holds what the mount showed")
        let k = try kernelMount(lowers: [fx.path("base")], upper: upper, work: try makeDir("kwork"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: k.mountPoint + "/shared")), merged,
                       "kernel overlayfs over our upper shows the same bytes")
    }

    /// Lower files of random bytes in layer `base`, and a writable mount over it with
    /// `extraOptions` (",OPTION...") appended.
    private func mountWithLowerFiles(_ names: [String], extraOptions: String) throws -> (FuseMount, String) {
        let base = fx.path("base")
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        for name in names {
            guard let random = FileHandle(forReadingAtPath: "/dev/urandom") else { throw XCTSkip("no /dev/urandom") }
            let bytes = try random.read(upToCount: Self.fileSize) ?? Data()
            try random.close()
            XCTAssertEqual(bytes.count, Self.fileSize)
            try bytes.write(to: URL(fileURLWithPath: base + "/" + name))
        }
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount("lowerdir=\(base),upperdir=\(upper),workdir=\(work)" + extraOptions)
        return (m, upper)
    }

    /// Runs fio on `jobs` (a job file's text), bounded; fails the test on any error it reports.
    private func runFio(_ jobs: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = tmp + "/jobs.fio"
        try jobs.write(toFile: path, atomically: false, encoding: .utf8)
        let r = try Run.program(Self.fio, ["--output-format=terse", "--terse-version=3", path], timeout: 120)
        XCTAssertFalse(r.timedOut, "fio did not finish in 120 s", file: file, line: line)
        XCTAssertEqual(r.status, 0, "fio: \(r.stderr)\n\(r.stdout.prefix(2000))", file: file, line: line)
        // Terse v3: a line per job (per group of `numjobs`), whose field 5 is its error number.
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("3;") }
        XCTAssertFalse(lines.isEmpty, "fio reported no job: \(r.stdout.prefix(2000))", file: file, line: line)
        for job in lines {
            let fields = job.split(separator: ";", omittingEmptySubsequences: false)
            XCTAssertEqual(fields.count > 4 ? fields[4] : "?", "0", "fio job \(fields.count > 2 ? fields[2] : "?")",
                           file: file, line: line)
        }
    }

    private func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }
}
