import CLinux
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
        // Every worker's ring runs task work only in its wait (Linux 6.1+; the ring needs 6.14).
        let workers = try XCTUnwrap(report.firstMatch(of: /(\d+) workers, (\d+) with deferred task work/), report)
        XCTAssertGreaterThan(Int(workers.1) ?? 0, 0, report)
        XCTAssertEqual(workers.1, workers.2, "a ring worker without DEFER_TASKRUN: \(report)")
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

    /// The CPUs each thread of `pid` may run on (status's Cpus_allowed_list), by thread id.
    private func allowedCPUs(_ pid: pid_t) -> [String] {
        let dir = "/proc/\(pid)/task"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { tid in
            guard let status = try? String(contentsOfFile: "\(dir)/\(tid)/status", encoding: .utf8) else { return nil }
            return status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
                .map { $0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) }
        }
    }

    /// Polls `allowedCPUs` for 5 s at most until `done` holds; returns the last lists seen.
    private func waitForThreads(_ pid: pid_t, _ done: ([String]) -> Bool) -> [String] {
        let deadline = Date().addingTimeInterval(5)
        var lists = allowedCPUs(pid)
        while !done(lists) && Date() < deadline { usleep(20_000); lists = allowedCPUs(pid) }
        return lists
    }

    /// Ring workers are pinned to their queue's CPU (small requests are served fastest beside
    /// their caller), let off it while they serve a large READ (readahead of a big file, so the
    /// other CPU takes part), and pinned again by the next small request.
    func testLargeReadsLetWorkersOffTheirCPU() throws { try largeReadsLetWorkersOff(daemonCPU: nil) }

    /// A daemon started on CPU 1 alone (as under `taskset -c 1`): a worker let off its CPU goes
    /// back to the CPUs the daemon was given, not to every CPU.
    func testWorkersLetOffTheirCPUKeepTheDaemonsCPUs() throws { try largeReadsLetWorkersOff(daemonCPU: 1) }

    private func largeReadsLetWorkersOff(daemonCPU: Int32?) throws {
        XCTAssertTrue(UringTestMode.setParameter(true))
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))
        guard cpus >= 2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) == cpus else {
            throw XCTSkip("needs two online CPUs or more")
        }
        var data = [UInt8](repeating: 0, count: 8 << 20)
        for i in data.indices { data[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        try fx.layer("low").fileBytes("big", data)
        let upper = try makeDir("upper"), work = try makeDir("work")

        var mine = unionfs_cpu_set()
        XCTAssertEqual(unionfs_affinity_get(&mine), 0)
        defer { _ = unionfs_affinity_set(&mine) }
        if let daemonCPU { XCTAssertEqual(unionfs_pin_to_cpu(daemonCPU), 0) }  // the daemon inherits it
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),uring=on")
        XCTAssertTrue(try stats(m).contains("transport: io_uring"))
        // Every request of this test comes from CPU 0, so to queue 0 and its workers.
        XCTAssertEqual(unionfs_pin_to_cpu(0), 0)
        let perCPU = 4  // UringWorker.perCPU
        let onCPU0 = { (lists: [String]) in lists.filter { $0 == "0" }.count }
        let single = { (list: String) in !list.contains("-") && !list.contains(",") }

        var st = stat()
        XCTAssertEqual(stat(m.mountPoint + "/big", &st), 0)
        var lists = waitForThreads(m.process.pid) { onCPU0($0) == perCPU }
        XCTAssertEqual(onCPU0(lists), perCPU, "queue 0's workers pinned before the read: \(lists)")
        let pinnedBefore = lists.filter(single).count

        // Read it whole, and keep it open: its close would send FLUSH, a small request.
        let fd = open(m.mountPoint + "/big", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var back = [UInt8](repeating: 0, count: data.count)
        var got = 0
        while got < back.count {
            let n = back.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            guard n > 0 else { break }
            got += n
        }
        XCTAssertEqual(got, data.count)
        XCTAssertTrue(back == data, "the file read through the ring differs from the lower one")
        lists = waitForThreads(m.process.pid) { onCPU0($0) < perCPU }
        XCTAssertLessThan(onCPU0(lists), perCPU, "no ring worker left its CPU for the large READs: \(lists)")
        if daemonCPU == nil {
            XCTAssertLessThan(lists.filter(single).count, pinnedBefore, "let off, but pinned elsewhere: \(lists)")
        } else {
            XCTAssertTrue(lists.allSatisfy(single), "a worker let off its CPU went beyond the daemon's: \(lists)")
        }

        // Small requests (lookups of missing names) pin them again. The kernel hands a request
        // to the entry that came back last, so one caller at a time reaches one worker: 8
        // callers at once on CPU 0 keep several of queue 0's entries busy, until each of its
        // workers has served one (5 s at most).
        let deadline = Date().addingTimeInterval(5)
        var round = 0
        repeat {
            let done = DispatchGroup()
            for caller in 0..<8 {
                done.enter()
                let name = "\(m.mountPoint)/missing-\(round)-\(caller)-"
                Thread.detachNewThread {
                    _ = unionfs_pin_to_cpu(0)
                    var st = stat()
                    for i in 0..<50 { _ = stat(name + "\(i)", &st) }
                    done.leave()
                }
            }
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
            round += 1
            lists = allowedCPUs(m.process.pid)
        } while onCPU0(lists) < perCPU && Date() < deadline
        XCTAssertEqual(onCPU0(lists), perCPU, "queue 0's workers still off their CPU after small requests: \(lists)")
    }

    func testOnWithParameterOffFailsSayingHow() throws {
        XCTAssertTrue(UringTestMode.setParameter(false))
        try fx.layer("low").file("f", "x")
        XCTAssertThrowsError(try fuseMount(lowerdirOption(["low"]) + ",uring=on", timeout: 10)) { error in
            XCTAssertTrue("\(error)".contains("echo 1 > /sys/module/fuse/parameters/enable_uring"), "\(error)")
        }
    }

    /// Where `io_uring_setup` is refused (here `kernel.io_uring_disabled=2`; elsewhere a
    /// container's seccomp filter), `auto` serves through /dev/fuse rather than agree to a ring
    /// no worker can set up: once a connection is on io_uring the kernel holds every request
    /// until each CPU's queue has an entry, and the mount hung. `on` fails before mounting,
    /// saying why.
    func testRingRefusedToTheProcessFallsBackOrFails() throws {
        let sysctl = "/proc/sys/kernel/io_uring_disabled"
        guard let saved = try? String(contentsOfFile: sysctl, encoding: .utf8) else { throw XCTSkip("no \(sysctl)") }
        XCTAssertTrue(UringTestMode.setParameter(true))
        try "2".write(toFile: sysctl, atomically: false, encoding: .utf8)
        addCleanup { try? saved.write(toFile: sysctl, atomically: false, encoding: .utf8) }
        try fx.layer("low").file("f", "x")
        let m = try fuseMount(lowerdirOption(["low"]) + ",uring=auto")
        let read = try Run.program("/bin/cat", [m.mountPoint + "/f"], timeout: 10)
        XCTAssertFalse(read.timedOut, "a read of the mount hung")
        XCTAssertEqual(read.stdout, "x")
        let report = try stats(m)
        XCTAssertTrue(report.contains("transport: /dev/fuse (not io_uring: io_uring_setup is refused"), report)
        m.stop()
        XCTAssertThrowsError(try fuseMount(lowerdirOption(["low"]) + ",uring=on", timeout: 10)) { error in
            XCTAssertTrue("\(error)".contains("io_uring_setup is refused to this process (Operation not permitted)"), "\(error)")
        }
    }

    /// A ring worker needs two descriptors (a clone of /dev/fuse and its ring) and a thread.
    /// Under a low descriptor limit not every CPU's queue got one, the kernel agreed to the ring
    /// all the same, and a read of the mount waited for good (a `cat` hung at nofile 8 and
    /// 10). Now the workers set up their rings before INIT, which asks for the ring only when
    /// each queue has one: at every limit the mount serves (the ring, or /dev/fuse saying why)
    /// or does not mount; and `uring=on` fails where `auto` fell back, leaving no mount.
    func testALimitThatLeavesAQueueWithoutARingWorkerNeverHangs() throws {
        XCTAssertTrue(UringTestMode.setParameter(true))
        try fx.layer("low").file("f", "x")
        var short: Int?, served = false
        for limit in stride(from: 8, through: 40, by: 2) {
            let launcher = ["/usr/bin/prlimit", "--nofile=\(limit):\(limit)", "--"]
            guard let m = try? fuseMount(lowerdirOption(["low"]) + ",uring=auto", name: "auto\(limit)",
                                         launcher: launcher, timeout: 10) else { continue }
            let read = try Run.program("/bin/cat", [m.mountPoint + "/f"], timeout: 10)
            XCTAssertFalse(read.timedOut, "nofile=\(limit): a read of the mount hung")
            // SIGUSR1 writes the stats to the log too (the daemon may have no descriptor left
            // for its stats file, which `unionfs-swift stats` waits for).
            kill(m.process.pid, SIGUSR1)
            let deadline = Date().addingTimeInterval(5)
            while !m.log.contains("transport: ") && Date() < deadline { usleep(10_000) }
            let report = m.log
            if report.contains("transport: /dev/fuse (not io_uring: not every CPU's queue got a ring worker") {
                short = short ?? limit
            } else {
                XCTAssertTrue(report.contains("transport: io_uring"), "nofile=\(limit): \(report)")
                served = true
            }
            m.stop()
        }
        XCTAssertTrue(served, "the ring served at no limit up to 40")
        guard let short else { return XCTFail("no limit from 8 to 40 left a queue without a ring worker") }
        let mnt = try makeDir("on")
        let on = try Run.program("/usr/bin/prlimit", ["--nofile=\(short):\(short)", "--", TestEnvironment.binary, "-f",
                                                      "-o", lowerdirOption(["low"]) + ",uring=on", mnt], timeout: 15)
        XCTAssertFalse(on.timedOut, "uring=on at nofile=\(short) hung")
        XCTAssertEqual(on.status, 1)
        XCTAssertTrue(on.stderr.contains("uring=on: not every CPU's queue got a ring worker (Too many open files)"), on.stderr)
        XCTAssertFalse(on.stderr.contains("failed to unmount"), on.stderr)
        XCTAssertFalse(MountTable.isMounted(mnt, fsTypePrefix: "fuse"), "uring=on left a mount behind")
        // In the background too: the command waits until the daemon serves or gave up, so its
        // status and message reach the caller (they went to /dev/null after a status of 0).
        let background = try Run.program("/usr/bin/prlimit", ["--nofile=\(short):\(short)", "--", TestEnvironment.binary,
                                                              "-o", lowerdirOption(["low"]) + ",uring=on", mnt], timeout: 15)
        XCTAssertEqual(background.status, 1, "uring=on refused after forking: \(background.stderr)")
        XCTAssertTrue(background.stderr.contains("uring=on: not every CPU's queue got a ring worker"), background.stderr)
        XCTAssertFalse(MountTable.isMounted(mnt, fsTypePrefix: "fuse"), "uring=on in the background left a mount behind")
    }

    /// Mounts a one-file layer with `uring` and the fuse module's parameter set to
    /// `parameter`, reads the file through it, and returns the mount and its stats.
    private func deviceMount(uring: String, parameter: Bool) throws -> (FuseMount, String) {
        XCTAssertTrue(UringTestMode.setParameter(parameter))
        try fx.layer("low").file("f", "x")
        let m = try fuseMount(lowerdirOption(["low"]) + ",uring=\(uring)")
        XCTAssertEqual(try String(contentsOfFile: m.mountPoint + "/f", encoding: .utf8), "x")
        return (m, try stats(m))
    }

    /// With the ring there to use, `uring=off` is the reason stats give for /dev/fuse.
    func testStatsSayTheRingWasTurnedOff() throws {
        let (m, report) = try deviceMount(uring: "off", parameter: true)
        XCTAssertTrue(report.contains("transport: /dev/fuse (not io_uring: uring=off)\n"), report)
        m.stop()
    }

    func testAutoFallsBackToDevice() throws {
        let (m, report) = try deviceMount(uring: "auto", parameter: false)
        XCTAssertTrue(report.contains("transport: /dev/fuse"), report)
        XCTAssertTrue(report.contains("(not io_uring: the fuse module's enable_uring is off; as root, echo 1 > /sys/module/fuse/parameters/enable_uring"),
                      "stats do not say why the ring does not serve: \(report)")
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
