import Foundation
import Glibc
import XCTest

/// One line of /proc/self/mountinfo.
struct MountEntry {
    var device: String      // "major:minor"
    var mountPoint: String
    var fsType: String
    var source: String
    var options: String
}

enum MountTable {
    /// Every mount this process sees, from /proc/self/mountinfo.
    static func entries() -> [MountEntry] {
        guard let text = readProcFile("/proc/self/mountinfo") else { return [] }
        var out: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 10, let dash = f.firstIndex(of: "-"), dash + 2 < f.count else { continue }
            out.append(MountEntry(device: f[2], mountPoint: unescape(f[4]), fsType: f[dash + 1],
                                  source: unescape(f[dash + 2]), options: f[5]))
        }
        return out
    }

    /// The whole of a /proc file, read to EOF (Foundation's `contentsOfFile` stops after the
    /// first 4 KiB of a file that reports size 0, which hid every mount past that point).
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Mounts whose mount point is exactly `path`.
    static func mounts(at path: String) -> [MountEntry] {
        entries().filter { $0.mountPoint == path }
    }

    static func isMounted(_ path: String, fsTypePrefix: String = "") -> Bool {
        mounts(at: path).contains { $0.fsType.hasPrefix(fsTypePrefix) }
    }

    /// Polls until `path` is (or is no longer) a mount point; true on success within `timeout`.
    static func wait(for path: String, mounted: Bool, fsTypePrefix: String = "", timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if isMounted(path, fsTypePrefix: fsTypePrefix) == mounted { return true }
            usleep(10_000)
        } while Date() < deadline
        return isMounted(path, fsTypePrefix: fsTypePrefix) == mounted
    }

    /// Undoes mountinfo's octal escapes (`\040` for a space, ...).
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count,
               let v = UInt8(String(decoding: u[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(v); i += 4
            } else {
                bytes.append(u[i]); i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Unmounts `path` whatever it takes: `fusermount3 -u` (FUSE) or umount2, then a lazy unmount.
    /// Bounded: every step has a deadline.
    static func forceUnmount(_ path: String) {
        var rounds = 0
        while !mounts(at: path).isEmpty && rounds < 4 {
            rounds += 1
            let isFuse = mounts(at: path).last!.fsType.hasPrefix("fuse")
            if isFuse {
                _ = try? Run.program("/usr/bin/fusermount3", ["-u", "-q", path], timeout: 5)
            } else {
                _ = umount2(path, 0)
            }
            if mounts(at: path).isEmpty { break }
            _ = try? Run.program("/usr/bin/umount", ["-l", path], timeout: 5)
            if mounts(at: path).isEmpty { break }
            _ = umount2(path, Int32(MNT_DETACH))
        }
    }
}

/// An unionfs-swift daemon run as a child process in the foreground (`-f`).
///
/// `start` returns once the mount shows in /proc/self/mountinfo (or throws, with the daemon's
/// output, after a bounded wait). `stop` unmounts and reaps the daemon with bounded waits; a
/// watchdog kills the daemon if the mount is still up after `watchdog` seconds, so that a hung
/// request fails the test (ENOTCONN) instead of hanging it.
final class FuseMount: @unchecked Sendable {
    let mountPoint: String
    let process: ChildProcess
    let logPath: String
    private let lock = NSLock()
    private var stopped = false

    struct StartError: Error, CustomStringConvertible { let description: String }

    private init(mountPoint: String, process: ChildProcess, logPath: String) {
        self.mountPoint = mountPoint; self.process = process; self.logPath = logPath
    }

    /// `launcher` runs before the binary (`prlimit --nofile=N:N --`, which execs it in place).
    static func start(options: String, mountPoint: String, extraArguments: [String] = [],
                      launcher: [String] = [],
                      timeout: TimeInterval = 30, watchdog: TimeInterval = 90) throws -> FuseMount {
        let binary = TestEnvironment.binary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw StartError(description: "unionfs-swift not built at \(binary) (run swift build first)")
        }
        let logPath = mountPoint + ".log"
        let options = UringTestMode.apply(to: options)
        let command = launcher + [binary, "-f"] + extraArguments + ["-o", options, mountPoint]
        let p = try ChildProcess(command[0], Array(command.dropFirst()), stdoutPath: logPath, stderrPath: logPath)
        let m = FuseMount(mountPoint: mountPoint, process: p, logPath: logPath)
        let deadline = Date().addingTimeInterval(timeout)
        while !MountTable.isMounted(mountPoint, fsTypePrefix: "fuse") {
            if !p.isRunning {
                m.stop()
                throw StartError(description: "unionfs-swift exited (\(p.exitStatus ?? -1)) before mounting: \(m.log)")
            }
            if Date() > deadline {
                m.stop()
                throw StartError(description: "mount did not appear within \(timeout) s: \(m.log)")
            }
            usleep(10_000)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + watchdog) { [weak m] in
            guard let m, !m.isStopped, m.process.isRunning else { return }
            kill(m.process.pid, SIGKILL)
        }
        return m
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    /// Unmounts (fusermount3 -u, then umount -l) and reaps the daemon; bounded, idempotent.
    func stop() {
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        lock.unlock()
        if MountTable.isMounted(mountPoint, fsTypePrefix: "fuse") {
            _ = try? Run.program("/usr/bin/fusermount3", ["-u", "-q", mountPoint], timeout: 5)
            if MountTable.isMounted(mountPoint, fsTypePrefix: "fuse") {
                kill(process.pid, SIGKILL)
                MountTable.forceUnmount(mountPoint)
            }
        }
        // After the unmount the daemon exits by itself; give it a moment, then insist.
        if !process.wait(timeout: 5) { process.stop() }
    }
}

/// A kernel overlayfs mount (the reference), unmounted by `stop`.
final class KernelOverlay {
    let mountPoint: String

    struct MountError: Error, CustomStringConvertible { let description: String }

    init(lowers: [String], upper: String? = nil, work: String? = nil, mountPoint: String) throws {
        var data = "lowerdir=" + lowers.map { $0.replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":")
        if let upper, let work { data += ",upperdir=\(upper),workdir=\(work)" }
        guard Glibc.mount("overlay", mountPoint, "overlay", 0, data) == 0 else {
            throw MountError(description: "mount -t overlay -o \(data) \(mountPoint): \(String(cString: strerror(errno)))")
        }
        self.mountPoint = mountPoint
    }

    func stop() { MountTable.forceUnmount(mountPoint) }
}

extension TempDirTestCase {
    /// Mounts unionfs-swift (child process, foreground) at a fresh `tmp/name`; unmounted at teardown.
    func fuseMount(_ options: String, name: String = "fuse", extraArguments: [String] = [],
                   launcher: [String] = [], timeout: TimeInterval = 30) throws -> FuseMount {
        let mnt = try makeDir(name)
        let m = try FuseMount.start(options: options, mountPoint: mnt, extraArguments: extraArguments,
                                    launcher: launcher, timeout: timeout)
        addCleanup { m.stop() }
        return m
    }

    /// Mounts kernel overlayfs at a fresh `tmp/name`; unmounted at teardown. Skips without root.
    func kernelMount(lowers: [String], upper: String? = nil, work: String? = nil,
                     name: String = "kernel") throws -> KernelOverlay {
        guard TestEnvironment.isRoot else { throw XCTSkip("kernel overlayfs needs root") }
        let mnt = try makeDir(name)
        let k = try KernelOverlay(lowers: lowers, upper: upper, work: work, mountPoint: mnt)
        addCleanup { k.stop() }
        return k
    }
}

/// `UNIONFS_TEST_URING=1`: every mount test runs on FUSE over io_uring (`uring=on` added to
/// its options unless it sets `uring=` itself), with the fuse module's `enable_uring` turned
/// on first when root (scripts/test.sh restores it after the pass).
enum UringTestMode {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"
    static var active: Bool { ProcessInfo.processInfo.environment["UNIONFS_TEST_URING"] == "1" }

    static func apply(to options: String) -> String {
        guard active, !options.contains("uring=") else { return options }
        _ = setParameter(true)
        return options + ",uring=on"
    }

    /// The parameter's value ("Y"/"N"), or nil where the kernel has no FUSE over io_uring.
    static func parameterValue() -> String? {
        (try? String(contentsOfFile: parameter, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    static func setParameter(_ on: Bool) -> Bool {
        guard let fd = Optional(open(parameter, O_WRONLY)), fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, on ? "1" : "0", 1) == 1
    }
}
