import Foundation
import Glibc
import XCTest

/// The daemon as users run it: without `-f`, so it forks into the background once mounted (as
/// podman's `mount_program` and mount(8) run it), and serves readers in parallel.
///
/// The thread that forked keeps a thread id cached from before the fork (Swift's `Mutex` locks
/// with it). When that thread served requests, a lock it held while another worker waited named
/// an owner the kernel could not find, and the daemon trapped within seconds of four parallel
/// readers. Every run here mounts afresh, so lookups contend on the node table.
final class BackgroundDaemonTests: MountTestCase {
    func testBackgroundDaemonServesParallelReaders() throws {
        let low = try fx.layer("low")
        let directories = 30, filesPerDirectory = 40
        for d in 0..<directories {
            for f in 0..<filesPerDirectory { try low.file("d\(d)/f\(f)", String(repeating: "\(d).\(f)\n", count: 8)) }
        }
        let expectedBytes = try Run.program("/bin/sh", ["-c", "find '\(fx.path("low"))' -type f -print0 | xargs -0 cat | wc -c"],
                                            timeout: 30).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertGreaterThan(Int(expectedBytes) ?? 0, 0)

        for round in 1...3 {
            let mnt = try makeDir("mnt\(round)")
            addDetachedMountCleanup(mnt)
            let r = try Run.program(TestEnvironment.binary, ["-o", UringTestMode.apply(to: lowerdirOption(["low"])), mnt], timeout: 15)
            XCTAssertEqual(r.status, 0, "mount failed: \(r.stderr)")
            guard r.status == 0, MountTable.wait(for: mnt, mounted: true, fsTypePrefix: "fuse", timeout: 10) else {
                return XCTFail("nothing mounted at \(mnt)")
            }
            let readers = try Run.program("/bin/sh", ["-c", """
                for i in 1 2 3 4; do (find '\(mnt)' -type f -print0 | xargs -0 cat | wc -c) & done; wait
                """], timeout: 60)
            XCTAssertFalse(readers.timedOut, "round \(round): readers timed out")
            let counts = readers.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertEqual(counts, Array(repeating: expectedBytes, count: 4),
                           "round \(round): every reader reads every byte: \(readers.stderr.prefix(400))")
            XCTAssertFalse(processes(mentioning: mnt).isEmpty, "round \(round): the daemon is gone")
            MountTable.forceUnmount(mnt)
        }
    }

    /// SIGTERM unmounts a daemon mounted at a relative path. libfuse unmounts by the path it
    /// mounted, and going to the background moves the daemon to /: the unmount named nothing (ENOENT),
    /// so the daemon went on serving and the mount stayed.
    func testSIGTERMUnmountsARelativeMountpoint() throws {
        try fx.layer("low").file("f", "x")
        let name = "rel-" + UUID().uuidString.prefix(8)
        let mnt = try makeDir(name)
        addDetachedMountCleanup(mnt)
        let options = UringTestMode.apply(to: lowerdirOption(["low"]))
        let r = try Run.program("/bin/sh", ["-c", "cd '\(tmp)' && exec '\(TestEnvironment.binary)' -o '\(options)' \(name)"], timeout: 15)
        XCTAssertEqual(r.status, 0, "mount failed: \(r.stderr)")
        guard MountTable.wait(for: mnt, mounted: true, fsTypePrefix: "fuse", timeout: 10) else {
            return XCTFail("nothing mounted at \(mnt)")
        }
        XCTAssertEqual(try String(contentsOfFile: mnt + "/f", encoding: .utf8), "x")
        let daemons = processes(mentioning: String(name))
        XCTAssertEqual(daemons.count, 1, "\(daemons)")
        for pid in daemons { kill(pid, SIGTERM) }
        XCTAssertTrue(MountTable.wait(for: mnt, mounted: false, fsTypePrefix: "fuse", timeout: 10),
                      "the daemon did not unmount \(name) on SIGTERM")
        XCTAssertTrue(waitForDaemonExit(mentioning: String(name)), "the daemon still runs after SIGTERM")
    }

    /// A daemon that cannot go to the background (it needs a pipe and a fork)
    /// fails and unmounts. It served on in the foreground instead, and the mount command,
    /// which its caller waits for, did not return (at nofile 8).
    func testADaemonThatCannotForkFailsAndLeavesNoMount() throws {
        try fx.layer("low").file("f", "x")
        var refused = false
        for limit in 6...12 {
            let mnt = try makeDir("mnt\(limit)")
            addDetachedMountCleanup(mnt)
            let r = try Run.program("/usr/bin/prlimit", ["--nofile=\(limit):\(limit)", "--", TestEnvironment.binary,
                                                         "-o", UringTestMode.apply(to: lowerdirOption(["low"])), mnt], timeout: 15)
            XCTAssertFalse(r.timedOut, "nofile=\(limit): the mount command did not return")
            if r.status == 0 {
                XCTAssertTrue(MountTable.wait(for: mnt, mounted: true, fsTypePrefix: "fuse", timeout: 10), "nofile=\(limit)")
                MountTable.forceUnmount(mnt)
            } else {
                refused = refused || r.stderr.contains("cannot go to the background")
                XCTAssertFalse(MountTable.isMounted(mnt, fsTypePrefix: "fuse"), "nofile=\(limit): failed and left a mount: \(r.stderr)")
            }
        }
        XCTAssertTrue(refused, "no limit from 6 to 12 kept the daemon from going to the background")
    }
}
