import Foundation
import Glibc
import XCTest

/// A throw-away login user for the rootless tests, made with `useradd` and removed with
/// everything it started at teardown. With `subordinateIDs` it has the ranges in /etc/subuid and
/// /etc/subgid that rootless podman needs (useradd allocates free ones); without, it is a user
/// with no subordinate IDs at all (a system user, which useradd gives none).
///
/// /dev/fuse must be usable by every user, as Debian's udev rule makes it (mode 0666):
/// fusermount3 decides who may mount. A machine left at 0600 is set to 0666 here.
final class RootlessUser {
    let name: String
    let uid: uid_t
    let gid: gid_t
    let home: String
    /// `XDG_RUNTIME_DIR`, as a login session would have it.
    let runtimeDir: String

    struct Failure: Error, CustomStringConvertible { let description: String }

    static let useradd = "/usr/sbin/useradd"

    /// Creates the user, registering its removal with `testCase`.
    init(subordinateIDs: Bool, for testCase: TempDirTestCase) throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("creating a user needs root") }
        guard FileManager.default.isExecutableFile(atPath: Self.useradd) else { throw XCTSkip("no useradd") }
        name = "rootless" + String(UInt32.random(in: 0..<1_000_000))
        var args = ["-m", "-s", "/bin/sh"]
        if !subordinateIDs { args.append("-r") }
        let r = try Run.program(Self.useradd, args + [name], timeout: 30)
        guard r.status == 0 else { throw Failure(description: "useradd \(name): \(r.stderr)") }
        guard let pw = getpwnam(name) else { throw Failure(description: "no passwd entry for \(name)") }
        uid = pw.pointee.pw_uid
        gid = pw.pointee.pw_gid
        home = String(cString: pw.pointee.pw_dir)
        runtimeDir = "/run/user/\(uid)"
        let name = self.name, uid = self.uid, runtimeDir = self.runtimeDir, home = self.home
        testCase.addCleanup { RootlessUser.remove(name: name, uid: uid, dirs: [runtimeDir, home]) }
        if subordinateIDs {
            for f in ["/etc/subuid", "/etc/subgid"] {
                let text = (try? String(contentsOfFile: f, encoding: .utf8)) ?? ""
                guard text.split(separator: "\n").contains(where: { $0.hasPrefix(name + ":") }) else {
                    throw Failure(description: "useradd gave \(name) no range in \(f)")
                }
            }
        }
        try FileManager.default.createDirectory(atPath: runtimeDir, withIntermediateDirectories: true)
        chown(runtimeDir, uid, gid)
        chmod(runtimeDir, 0o700)
        var st = stat()
        if stat("/dev/fuse", &st) == 0 && st.st_mode & 0o006 != 0o006 { chmod("/dev/fuse", 0o666) }
    }

    /// Runs `script` with /bin/sh as this user (runuser, a login-like environment), bounded.
    func shell(_ script: String, timeout: TimeInterval = 60, environment: [String: String] = [:]) throws -> ProcessResult {
        var env = ["HOME": home, "USER": name, "LOGNAME": name, "XDG_RUNTIME_DIR": runtimeDir,
                   "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        for (k, v) in environment { env[k] = v }
        let assignments = env.keys.sorted().map { "\($0)=\(env[$0]!)" }
        // From the user's home: the caller's directory may be closed to the user (a clone under
        // /root), and podman refuses to start where it cannot chdir.
        return try Run.program("/usr/sbin/runuser", ["-u", name, "--", "/usr/bin/env", "-i", "-C", home] + assignments
                               + ["/bin/sh", "-c", script], timeout: timeout)
    }

    /// Like `shell`, requiring exit 0; returns stdout.
    @discardableResult
    func ok(_ script: String, timeout: TimeInterval = 60, environment: [String: String] = [:]) throws -> String {
        let r = try shell(script, timeout: timeout, environment: environment)
        guard !r.timedOut, r.status == 0 else {
            throw Failure(description: "as \(name): \(r.timedOut ? "timed out" : "exit \(r.status)"): \(script.prefix(300))\n"
                          + "stderr: \(r.stderr.suffix(3000))\nstdout: \(r.stdout.suffix(1000))")
        }
        return r.stdout
    }

    /// Makes `path` (and its parents below an existing directory) the user's.
    func own(_ path: String) { chown(path, uid, gid) }

    /// Ends the user's processes (FUSE daemons, podman's pause process), unmounts what the user
    /// left mounted, removes its runtime dir and the account with its home and subordinate IDs.
    private static func remove(name: String, uid: uid_t, dirs: [String]) {
        for _ in 0..<3 {
            let pids = processes(of: uid)
            if pids.isEmpty { break }
            for p in pids { kill(p, SIGKILL) }
            usleep(100_000)
        }
        for m in MountTable.entries().reversed() where dirs.contains(where: { m.mountPoint.hasPrefix($0 + "/") }) {
            MountTable.forceUnmount(m.mountPoint)
        }
        _ = try? Run.program("/bin/rm", ["-rf", dirs[0]], timeout: 60)
        // What the user left directly in /tmp (the examples' temp dirs).
        _ = try? Run.program("/usr/bin/find", ["/tmp", "-mindepth", "1", "-maxdepth", "1", "-user", String(uid),
                                               "-exec", "rm", "-rf", "{}", "+"], timeout: 60)
        for _ in 0..<3 where getpwnam(name) != nil {
            for p in processes(of: uid) { kill(p, SIGKILL) }
            let r = try? Run.program("/usr/sbin/userdel", ["-r", "-f", name], timeout: 60)
            if getpwnam(name) != nil { print("RootlessUser: userdel \(name): \(r?.stderr ?? "did not run")"); usleep(200_000) }
        }
    }

    /// Processes running as `uid`.
    static func processes(of uid: uid_t) -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return items.compactMap { item -> pid_t? in
            guard let pid = pid_t(item) else { return nil }
            var st = stat()
            guard stat("/proc/\(item)", &st) == 0, st.st_uid == uid else { return nil }
            return pid
        }
    }
}

/// Runs shell scripts as root of a fresh user namespace (with its own mount namespace) whose
/// ids 0-65535 are the host's 0-65535: no CAP_SYS_ADMIN in the initial namespace, so no
/// `trusted.*` xattrs, as in a rootless container, while the fixture's owners stay what they are.
///
/// util-linux's `--map-users` goes through newuidmap, which refuses root without an /etc/subuid
/// entry; so the maps are written here, from outside, as the kernel lets a parent-namespace root
/// do. The script waits for its map before it starts.
enum UserNamespace {
    static func run(_ script: String, timeout: TimeInterval = 60) throws -> ProcessResult {
        let dir = NSTemporaryDirectory() + "unionfs-userns-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let wrapped = "n=0; while [ -z \"$(cat /proc/self/uid_map)\" ]; do n=$((n+1)); [ $n -lt 2000 ] || exit 99; sleep 0.005; done\n"
            + script
        let p = try ChildProcess("/usr/bin/unshare", ["--user", "--mount", "--propagation", "private", "/bin/sh", "-c", wrapped],
                                 stdoutPath: dir + "/out", stderrPath: dir + "/err")
        let mine = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")
        let deadline = Date().addingTimeInterval(10)
        var mapped = false
        while Date() < deadline && p.isRunning {
            let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.pid)/ns/user")
            if let theirs, theirs != mine {
                mapped = write("0 0 65536\n", to: "/proc/\(p.pid)/uid_map") && write("0 0 65536\n", to: "/proc/\(p.pid)/gid_map")
                break
            }
            usleep(2_000)
        }
        let timedOut = !mapped || !p.wait(timeout: timeout)
        if timedOut { p.stop() }
        let o = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? ""
        return ProcessResult(status: p.exitStatus ?? -1, timedOut: timedOut, stdout: o,
                             stderr: mapped ? e : "could not write the namespace's id maps\n" + e)
    }

    private static func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return text.withCString { Glibc.write(fd, $0, strlen($0)) } == text.utf8.count
    }
}
