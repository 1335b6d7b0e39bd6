import Foundation
import Glibc
import XCTest

/// `Benchmarks/round-trips.sh` (README, Benchmarks): per opcode, the round trips one command
/// sent to a mount, and with `--why OPCODE` the kernel paths that sent them. Root only (tracefs).
final class RoundTripsScriptTests: MountTestCase {
    private var script: String { TestEnvironment.packageRoot + "/Benchmarks/round-trips.sh" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("round-trips.sh needs root (tracefs)") }
        let events = "/sys/kernel/tracing/events/fuse"
        if !FileManager.default.fileExists(atPath: events) {
            _ = try Run.program("/bin/mount", ["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        }
        guard FileManager.default.fileExists(atPath: events) else { throw XCTSkip("no fuse tracepoints") }
    }

    /// Three creates in a new directory: three CREATEs in the table, and the GETATTRs of the
    /// directory traced to the permission check of the path walk.
    func testCountsAndExplainsRoundTrips() throws {
        try fx.layer("low").file("f", "x")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work)")
        let r = try Run.program("/bin/bash", [script, "--why", "getattr", m.mountPoint, "--", "/bin/sh", "-c",
                                              "mkdir \(m.mountPoint)/d && for i in 1 2 3; do echo x > \(m.mountPoint)/d/f$i; done"],
                                timeout: 60)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let create = r.stdout.split(separator: "\n").first { $0.hasPrefix("CREATE ") }
        XCTAssertEqual(create?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first, "3", r.stdout)
        XCTAssertTrue(r.stdout.contains("why GETATTR: the kernel paths that sent it"), r.stdout)
        XCTAssertTrue(r.stdout.contains("fuse_do_getattr < fuse_permission"), r.stdout)
        XCTAssertEqual(try String(contentsOfFile: upper + "/d/f3", encoding: .utf8), "x\n")
        // Its tracing instance is gone.
        let instances = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/kernel/tracing/instances")) ?? []
        XCTAssertFalse(instances.contains { $0.hasPrefix("unionfs-round-trips-") }, "\(instances)")
    }

    /// Bad input names itself and exits 2; the command's own status is passed through.
    func testBadInputAndExitStatus() throws {
        try fx.layer("low").file("f", "x")
        let m = try fuseMount(lowerdirOption(["low"]))
        let pattern = try Run.program("/bin/bash", [script, "--why", "GET*", m.mountPoint, "--", "/bin/true"], timeout: 30)
        XCTAssertEqual(pattern.status, 2)
        XCTAssertTrue(pattern.stderr.contains("--why takes an opcode name"), pattern.stderr)
        let unknown = try Run.program("/bin/bash", [script, "--why", "NOPE", m.mountPoint, "--", "/bin/true"], timeout: 30)
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("no opcode FUSE_NOPE"), unknown.stderr)
        let notFuse = try Run.program("/bin/bash", [script, tmp, "--", "/bin/true"], timeout: 30)
        XCTAssertEqual(notFuse.status, 2)
        XCTAssertTrue(notFuse.stderr.contains("is not a"), notFuse.stderr)
        let failing = try Run.program("/bin/bash", [script, m.mountPoint, "--", "/bin/sh", "-c", "ls \(m.mountPoint) >/dev/null; exit 7"],
                                      timeout: 30)
        XCTAssertEqual(failing.status, 7, failing.stdout + failing.stderr)
        XCTAssertTrue(failing.stdout.contains("(exit 7,"), failing.stdout)
    }
}
