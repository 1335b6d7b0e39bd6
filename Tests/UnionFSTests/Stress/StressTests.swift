import Foundation
import Glibc
import XCTest

/// Issue 13: random operations from 8 processes at once (fsstress-like, `StressWorker`) for
/// `UNIONFS_STRESS_SECONDS` (120 by default) on a mount whose lower holds private and shared
/// files. Fails on any EIO, ENXIO, ESTALE or ENOTCONN, on any ENOENT for a name only that
/// process made and did not remove, and on a private tree that differs from the process's
/// model. Afterwards the daemon's descriptors and RSS must come back near their start once the
/// kernel drops its caches (`drop_caches`: every node forgotten), and kernel overlayfs over the
/// upper must show the tree this mount showed. Prints the counts.
final class StressTests: WriteTestCase {
    func testEightProcessesOfRandomOperations() throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = Double(env["UNIONFS_STRESS_SECONDS"] ?? "") ?? 120
        let seed = SeededRandom.seed(from: "UNIONFS_STRESS_SEED")
        let processes = 8
        let binary = CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: binary), binary.hasSuffix(".xctest") else {
            throw XCTSkip("the stress processes re-run the test binary; not found at \(binary)")
        }
        let low = try fx.layer("low")
        var lowerFiles: [[String]] = []
        for i in 0..<processes {
            var mine: [String] = []
            for k in 0..<5 {
                try low.file("p\(i)/lf\(k)", String(repeating: "lower \(i) \(k) ", count: 1 + k * 300))
                mine.append("p\(i)/lf\(k)")
            }
            lowerFiles.append(mine)
        }
        for j in 0..<4 {
            for k in 0..<10 { try low.file("s\(j)/x\(k)", "shared \(j) \(k)") }
            try low.file("s\(j)/ldir/y", "y").file("s\(j)/ldir/sub/z", "z")
        }
        lowers = [fx.path("low")]
        upperDir = try makeDir("stress-upper")
        workDir = try makeDir("stress-work")
        let m = try FuseMount.start(options: lowerdirOption(["low"]) + ",upperdir=\(upperDir),workdir=\(workDir)",
                                    mountPoint: try makeDir("stress-mount"), watchdog: seconds + 600)
        addCleanup { m.stop() }
        mount = m
        let daemon = m.process.pid
        let start = DaemonUsage(daemon)
        var peak = start

        let results = try makeDir("stress-results")
        let deadline = Date().addingTimeInterval(seconds)
        var workers: [ChildProcess] = []
        for i in 0..<processes {
            var e = env
            e["UNIONFS_STRESS_WORKER"] = [m.mountPoint, String(i), String(deadline.timeIntervalSince1970), String(seed),
                                          "\(results)/\(i).json", lowerFiles[i].joined(separator: ",")].joined(separator: "|")
            workers.append(try ChildProcess(binary, ["UnionFSTests.StressWorkerEntry/testWorker"], environment: e,
                                            stdoutPath: "\(results)/\(i).out", stderrPath: "\(results)/\(i).out"))
        }
        addCleanup { for w in workers { w.stop() } }
        let limit = deadline.addingTimeInterval(120)
        while workers.contains(where: { $0.isRunning }) && Date() < limit {
            peak = peak.max(DaemonUsage(daemon))
            usleep(500_000)
        }
        for (i, w) in workers.enumerated() where w.isRunning {
            XCTFail("stress process \(i) still running 120 s past its deadline (seed \(seed))")
            w.stop()
        }

        var ops: [String: Int] = [:], errors: [String: Int] = [:], fatal: [String] = []
        for i in 0..<processes {
            guard let data = try? Data(contentsOf: URL(fileURLWithPath: "\(results)/\(i).json")),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                let out = (try? String(contentsOfFile: "\(results)/\(i).out", encoding: .utf8)) ?? ""
                XCTFail("stress process \(i) left no result (exit \(workers[i].exitStatus ?? -1)):\n\(out.suffix(2000))")
                continue
            }
            for (k, v) in json["ops"] as? [String: Int] ?? [:] { ops[k, default: 0] += v }
            for (k, v) in json["errors"] as? [String: Int] ?? [:] { errors[k, default: 0] += v }
            fatal += (json["fatal"] as? [String] ?? []).map { "process \(i): \($0)" }
        }
        XCTAssertTrue(fatal.isEmpty, "seed \(seed) (UNIONFS_STRESS_SEED):\n" + fatal.prefix(40).joined(separator: "\n"))

        // The kernel forgets every node it can; the daemon must give back what they held.
        let beforeDrop = DaemonUsage(daemon)
        peak = peak.max(beforeDrop)
        _ = try? "3\n".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)
        usleep(1_500_000)
        let after = DaemonUsage(daemon)
        let total = ops.values.reduce(0, +)
        print("""
            stress: \(processes) processes, \(Int(seconds)) s, seed \(seed)
            stress: operations \(total): \(ops.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            stress: errors \(errors.values.reduce(0, +)): \(errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            stress: daemon fds start \(start.fds) peak \(peak.fds) before drop_caches \(beforeDrop.fds) after \(after.fds)
            stress: daemon RSS KiB start \(start.rssKiB) peak \(peak.rssKiB) before drop_caches \(beforeDrop.rssKiB) after \(after.rssKiB)
            """)
        for e in ["EIO", "ENXIO", "ESTALE", "ENOTCONN"] { XCTAssertNil(errors[e], "\(e) seen (seed \(seed))") }
        XCTAssertGreaterThan(total, 1000, "too few operations")
        // What stays: the layer directories of the few nodes the kernel keeps (the top
        // directories, two layers each) and the workers' cwd-less mount: 23 -> 45 in a 20 s run.
        XCTAssertLessThanOrEqual(after.fds, start.fds + 64, "descriptors not given back after drop_caches")
        XCTAssertLessThanOrEqual(after.rssKiB, start.rssKiB + 64 * 1024, "RSS not back within 64 MiB of its start")
        try finishAndCompareWithKernel()
    }
}

/// Descriptors and resident memory of a process, from /proc.
struct DaemonUsage {
    var fds = 0
    var rssKiB = 0

    init(_ pid: pid_t) {
        fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
        let status = MountTable.readProcFile("/proc/\(pid)/status") ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            rssKiB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
    }

    func max(_ o: DaemonUsage) -> DaemonUsage {
        var m = self
        m.fds = Swift.max(fds, o.fds)
        m.rssKiB = Swift.max(rssKiB, o.rssKiB)
        return m
    }
}
