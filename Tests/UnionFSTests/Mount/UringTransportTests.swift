import Foundation
import Glibc
import XCTest

/// FUSE over io_uring (`uring=auto|on|off`): the ring serves a mount and unmounts cleanly;
/// `uring=on` without the fuse module's `enable_uring` fails saying how to turn it on; `auto`
/// falls back to /dev/fuse. Each test sets the parameter and puts it back.
final class UringTransportTests: MountTestCase {
    private var saved: String?

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard let value = UringTestMode.parameterValue() else { throw XCTSkip("this kernel has no FUSE over io_uring") }
        saved = value
    }

    override func tearDownWithError() throws {
        if let saved { UringTestMode.setParameter(saved == "Y" || saved == "1") }
        try super.tearDownWithError()
    }

    private func stats(_ m: FuseMount) throws -> String {
        try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10).stdout
    }

    func testRingServesLookupsReadsWritesListings() throws {
        XCTAssertTrue(UringTestMode.setParameter(true))
        try fx.layer("low").file("a/one", "lower data").file("a/two", "2").dir("empty")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),uring=on")
        XCTAssertEqual(try String(contentsOfFile: m.mountPoint + "/a/one", encoding: .utf8), "lower data")
        for i in 0..<50 {
            try "file \(i)".write(toFile: m.mountPoint + "/a/new\(i)", atomically: false, encoding: .utf8)
        }
        try "appended".write(toFile: m.mountPoint + "/a/two", atomically: false, encoding: .utf8)
        let big = [UInt8](repeating: 7, count: 3 << 20)
        XCTAssertTrue(FileManager.default.createFile(atPath: m.mountPoint + "/big", contents: Data(big)))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: m.mountPoint + "/big")).count, big.count)
        let names = try FileManager.default.contentsOfDirectory(atPath: m.mountPoint + "/a")
        XCTAssertEqual(names.count, 52)
        XCTAssertEqual(try String(contentsOfFile: upper + "/a/new7", encoding: .utf8), "file 7")
        XCTAssertEqual(unlink(m.mountPoint + "/a/new0"), 0)
        let report = try stats(m)
        XCTAssertTrue(report.contains("transport: io_uring"), report)
        XCTAssertTrue(report.contains("queues, "), report)
        let started = Date()
        m.stop()
        XCTAssertFalse(MountTable.isMounted(m.mountPoint))
        XCTAssertFalse(m.process.isRunning, "daemon still running after unmount: \(m.log)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 8, "unmount of a ring mount took too long")
    }

    /// A request that waits holds only the worker serving it. Here the wait is an open of a
    /// file in a lower layer that is itself a FUSE mount whose daemon is stopped; a second
    /// process on the same CPU (so on the same ring queue) must still be answered. With one
    /// thread serving all of a CPU's entries it waited behind the first until that ended.
    func testWaitingRequestDoesNotHoldItsCPU() throws {
        XCTAssertTrue(UringTestMode.setParameter(true))
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { throw XCTSkip("needs taskset") }
        try fx.layer("stuck").file("held", "behind a stopped daemon")
        try fx.layer("fast").file("free", "answered")
        let slow = try fuseMount(lowerdirOption(["stuck"]) + ",uring=off", name: "slow")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount("lowerdir=\(fx.path("fast")):\(slow.mountPoint),upperdir=\(upper),workdir=\(work),uring=on")
        XCTAssertTrue(try stats(m).contains("transport: io_uring"))
        var st = stat()
        XCTAssertEqual(stat(m.mountPoint + "/held", &st), 0)  // looked up while the layer answers

        XCTAssertEqual(kill(slow.process.pid, SIGSTOP), 0)
        addCleanup { kill(slow.process.pid, SIGCONT) }  // runs before either mount is stopped
        let waiting = try ChildProcess("/usr/bin/taskset", ["-c", "0", "cat", m.mountPoint + "/held"],
                                       stdoutPath: tmp + "/held.out", stderrPath: tmp + "/held.err")
        addCleanup { waiting.stop() }
        XCTAssertFalse(waiting.wait(timeout: 1), "the open of a file of a stopped layer returned")

        let other = try Run.program("/usr/bin/taskset", ["-c", "0", "cat", m.mountPoint + "/free"], timeout: 10)
        XCTAssertFalse(other.timedOut, "a request from the same CPU waited behind the stopped one")
        XCTAssertEqual(other.stdout, "answered")

        kill(slow.process.pid, SIGCONT)
        XCTAssertTrue(waiting.wait(timeout: 10))
        XCTAssertEqual(try String(contentsOfFile: tmp + "/held.out", encoding: .utf8), "behind a stopped daemon")
    }

    func testOnWithParameterOffFailsSayingHow() throws {
        XCTAssertTrue(UringTestMode.setParameter(false))
        try fx.layer("low").file("f", "x")
        XCTAssertThrowsError(try fuseMount(lowerdirOption(["low"]) + ",uring=on", timeout: 10)) { error in
            XCTAssertTrue("\(error)".contains("echo 1 > /sys/module/fuse/parameters/enable_uring"), "\(error)")
        }
    }

    func testAutoFallsBackToDevice() throws {
        XCTAssertTrue(UringTestMode.setParameter(false))
        try fx.layer("low").file("f", "x")
        let m = try fuseMount(lowerdirOption(["low"]) + ",uring=auto")
        XCTAssertEqual(try String(contentsOfFile: m.mountPoint + "/f", encoding: .utf8), "x")
        let report = try stats(m)
        XCTAssertTrue(report.contains("transport: /dev/fuse"), report)
        XCTAssertTrue(report.contains("\nreply writev "), "no row for the replies written to /dev/fuse: \(report)")
        // The report file, named by the daemon's user and pid, goes with the daemon: a later
        // daemon of another user given the same pid could not replace it in a sticky /tmp.
        let dir = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? "/tmp"
        let file = dir + "/unionfs-swift-\(geteuid())-\(m.process.pid).stats"
        XCTAssertTrue(FileManager.default.fileExists(atPath: file), file)
        m.stop()
        XCTAssertFalse(m.process.isRunning)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file), "the daemon left \(file) behind")
    }
}
