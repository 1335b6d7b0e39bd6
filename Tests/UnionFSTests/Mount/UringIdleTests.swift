import CLinux
import Foundation
import Glibc
import XCTest

/// `uring_idle=auto|off` (IdleWaitGuard): ring workers wait at SCHED_IDLE while requests come
/// and go back to SCHED_OTHER when quiet; with a busy loop on every CPU in the daemon's own
/// scheduling group (the test's children share its session, so its autogroup) a workload
/// still ends, because the guard sends the workers back when one starves. Root only (leaving
/// SCHED_IDLE needs CAP_SYS_NICE, and enable_uring is root's to set).
final class UringIdleTests: MountTestCase {
    private var saved: String?

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("needs root (enable_uring, CAP_SYS_NICE)") }
        guard let value = UringTestMode.parameterValue() else { throw XCTSkip("this kernel has no FUSE over io_uring") }
        saved = value
        XCTAssertTrue(UringTestMode.setParameter(true))
    }

    override func tearDownWithError() throws {
        if let saved { UringTestMode.setParameter(saved == "Y" || saved == "1") }
        try super.tearDownWithError()
    }

    private func stats(_ m: FuseMount) throws -> String {
        try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10).stdout
    }

    /// The scheduling policy of each thread of `pid` (stat's 41st field: 0 SCHED_OTHER, 5 SCHED_IDLE).
    private func policies(_ pid: pid_t) -> [Int] { threads(pid).map(\.policy) }

    private func threads(_ pid: pid_t) -> [(tid: Int32, policy: Int)] {
        let dir = "/proc/\(pid)/task"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { tid in
            guard let stat = try? String(contentsOfFile: "\(dir)/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"), let id = Int32(tid) else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] is the 3rd (state)
            return fields.count > 38 ? Int(fields[38]).map { (id, $0) } : nil
        }
    }

    /// Sends requests until `seconds` have passed: `statvfs` of `dir` (a STATFS request), which
    /// the kernel never answers from its caches.
    private func keepBusy(_ dir: String, for seconds: TimeInterval) throws {
        let end = Date().addingTimeInterval(seconds)
        var fs = statvfs()
        while Date() < end { XCTAssertEqual(statvfs(dir, &fs), 0) }
    }

    private func makeFiles(_ count: Int) throws {
        let layer = try fx.layer("low")
        for i in 0..<count { try layer.file("d/f\(i)", "\(i)") }
    }

    func testWorkersWaitAtIdleWhileBusyAndNormalWhenQuiet() throws {
        try makeFiles(200)
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),uring=on")
        try keepBusy(m.mountPoint + "/d", for: 0.3)
        let busy = policies(m.process.pid)
        let report = try stats(m)
        XCTAssertTrue(report.contains("ring workers wait at SCHED_IDLE: yes"), report)
        XCTAssertGreaterThanOrEqual(busy.filter { $0 == 5 }.count, 2, "threads at SCHED_IDLE while busy: \(busy)")
        // Half a second without a request: every thread back to SCHED_OTHER.
        let deadline = Date().addingTimeInterval(10)
        var quiet = policies(m.process.pid)
        while quiet.contains(5) && Date() < deadline { usleep(100_000); quiet = policies(m.process.pid) }
        XCTAssertFalse(quiet.contains(5), "still at SCHED_IDLE after the requests stopped: \(quiet)")
        XCTAssertTrue(quiet.allSatisfy { $0 == 0 }, "\(quiet)")
        XCTAssertTrue(try stats(m).contains("(not now"))
        // And at SCHED_IDLE again with the next requests.
        try keepBusy(m.mountPoint + "/d", for: 0.2)
        XCTAssertTrue(policies(m.process.pid).contains(5))
    }

    /// A thread at SCHED_IDLE keeps the I/O priority of a normal one (best effort, class 2):
    /// left to the kernel, its I/O would be of the idle class, which a disk scheduler that
    /// honours classes (mq-deadline) sends only when no other I/O waits.
    func testIdleWorkersKeepBestEffortIO() throws {
        try makeFiles(200)
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),uring=on")
        try keepBusy(m.mountPoint + "/d", for: 0.3)
        let idle = threads(m.process.pid).filter { $0.policy == 5 }
        XCTAssertGreaterThanOrEqual(idle.count, 2, "threads at SCHED_IDLE while busy: \(threads(m.process.pid))")
        for thread in idle {
            let priority = unionfs_ioprio_get(thread.tid)
            XCTAssertEqual(priority >> 13, 2, "thread \(thread.tid) at SCHED_IDLE has I/O priority \(priority)")
        }
    }

    func testOffKeepsEveryThreadNormal() throws {
        try makeFiles(200)
        let m = try fuseMount(lowerdirOption(["low"]) + ",uring=on,uring_idle=off")
        try keepBusy(m.mountPoint + "/d", for: 0.3)
        let busy = policies(m.process.pid)
        XCTAssertFalse(busy.isEmpty)
        XCTAssertTrue(busy.allSatisfy { $0 == 0 }, "\(busy)")
        XCTAssertTrue(try stats(m).contains("ring workers wait at SCHED_IDLE: no (uring_idle=off)"))
    }

    /// Without the guard, `ls -l` of 29k entries did not end in 60 s beside these loops; with
    /// it, as long as with uring_idle=off give or take a tenth.
    func testBusyLoopsInTheDaemonsGroupDoNotStarveIt() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { throw XCTSkip("needs taskset") }
        try makeFiles(3000)
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),uring=on")
        try keepBusy(m.mountPoint + "/d", for: 0.1)  // the guard is awake
        let cpus = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var loops: [ChildProcess] = []
        for cpu in 0..<cpus {
            let loop = try ChildProcess("/usr/bin/taskset", ["-c", "\(cpu)", "/bin/sh", "-c", "while :; do :; done"],
                                        stdoutPath: "/dev/null", stderrPath: "/dev/null")
            loops.append(loop)
            addCleanup { loop.stop() }
        }
        usleep(100_000)
        let started = Date()
        let listing = try Run.program("/bin/ls", ["-l", m.mountPoint + "/d"], timeout: 60)
        let took = Date().timeIntervalSince(started)
        let report = try stats(m)
        for loop in loops { loop.stop() }
        XCTAssertFalse(listing.timedOut, "ls -l beside busy loops did not end in 60 s: \(report)")
        XCTAssertEqual(listing.stdout.split(separator: "\n").count, 3001)
        XCTAssertLessThan(took, 30, report)
        XCTAssertFalse(report.contains("0 times back to normal"), "the guard never sent the workers back: \(report)")
    }
}
