import Foundation
import Glibc
import XCTest

/// One podman storage under a test's temp dir: its own graph root, run root and libpod tmpdir,
/// so nothing touches the machine's containers, and `reset` removes it all.
///
/// With `mountProgram` set the overlay driver mounts through that program (as storage.conf's
/// `mount_program`); without it podman uses kernel overlayfs, the reference.
struct PodmanStore {
    let name: String
    let base: String
    let mountProgram: String?
    /// `--ulimit nofile=N:N` for every container: the machine's hard limit, at most 1M.
    let nofile: UInt64
    /// The OCI runtime (`--runtime`).
    var runtime = "crun"

    static let podman = "/usr/bin/podman"

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(name: String, base: String, mountProgram: String?) throws {
        self.name = name
        self.base = base
        self.mountProgram = mountProgram
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        nofile = min(UInt64(limit.rlim_max), 1 << 20)
        for d in ["root", "runroot", "tmp"] {
            try FileManager.default.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true)
        }
        // The storage.conf lines the README gives users. (podman 4 drops storage.conf's driver
        // options when --root is given on the command line, so the roots are set here too.)
        var conf = """
        [storage]
        driver = "overlay"
        graphroot = "\(base)/root"
        runroot = "\(base)/runroot"

        """
        if let mountProgram { conf += "[storage.options.overlay]\nmount_program = \"\(mountProgram)\"\n" }
        try conf.write(toFile: base + "/storage.conf", atomically: true, encoding: .utf8)
    }

    /// Limits every container gets. podman's defaults (1M) exceed this machine's hard limits and
    /// raising a limit needs CAP_SYS_RESOURCE, which a root shell here may lack; nproc 4096 is
    /// plenty for a test.
    var ulimits: [String] {
        var limit = rlimit()
        getrlimit(Int32(__RLIMIT_NPROC.rawValue), &limit)
        let nproc = min(UInt64(limit.rlim_max), 4096)
        return ["--ulimit", "nofile=\(nofile):\(nofile)", "--ulimit", "nproc=\(nproc):\(nproc)"]
    }

    /// Global flags: libpod state under the store, cgroupfs, file events, the runtime. The
    /// storage itself comes from this store's storage.conf.
    var globalArguments: [String] {
        ["--tmpdir", base + "/tmp", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime]
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_STORAGE_CONF"] = base + "/storage.conf"
        env["TMPDIR"] = base + "/tmp"
        return env
    }

    /// Runs `podman GLOBAL args` with a deadline; the result, whatever the exit status.
    @discardableResult
    func run(_ args: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
        try Run.program(Self.podman, globalArguments + args, timeout: timeout, environment: environment)
    }

    /// Runs `podman args` and requires exit 0 in time; returns stdout.
    @discardableResult
    func ok(_ args: [String], timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run(args, timeout: timeout)
        guard !r.timedOut, r.status == 0 else {
            let what = r.timedOut ? "timed out after \(Int(timeout)) s" : "exit \(r.status)"
            throw Failure(description: "[\(name)] podman \(args.joined(separator: " ")): \(what)\nstderr: \(r.stderr.suffix(2000))\nstdout: \(r.stdout.suffix(1000))")
        }
        return r.stdout
    }

    /// `podman run --rm` of a shell script in `image`; returns its stdout.
    @discardableResult
    func shell(_ image: String, _ script: String, name: String? = nil, keep: Bool = false,
               timeout: TimeInterval = 60) throws -> String {
        var args = ["run", "--network", "none"] + ulimits
        if !keep { args.append("--rm") }
        if let name { args += ["--name", name] }
        return try ok(args + [image, "/bin/sh", "-ec", script], timeout: timeout)
    }

    /// Removes every container, image and layer of this store (bounded), then whatever mount
    /// podman left under it, so the directory can be deleted.
    func reset() {
        _ = try? run(["rm", "-a", "-f", "-t", "0"], timeout: 60)
        _ = try? run(["system", "reset", "-f"], timeout: 60)
        for m in MountTable.entries().reversed() where m.mountPoint.hasPrefix(base + "/") {
            MountTable.forceUnmount(m.mountPoint)
        }
    }

    /// FUSE mounts (ours or any other) still under this store.
    var fuseMounts: [MountEntry] {
        MountTable.entries().filter { $0.mountPoint.hasPrefix(base + "/") && $0.fsType.hasPrefix("fuse") }
    }
}
