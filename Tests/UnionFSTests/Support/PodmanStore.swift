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
    /// Runs podman as this user (rootless) instead of root.
    var user: RootlessUser? = nil

    static let podman = "/usr/bin/podman"

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(name: String, base: String, mountProgram: String?, user: RootlessUser? = nil) throws {
        self.name = name
        self.base = base
        self.mountProgram = mountProgram
        self.user = user
        nofile = PodmanStore.nofileLimit
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
        rootless_storage_path = "\(base)/root"

        """
        if let mountProgram { conf += "[storage.options.overlay]\nmount_program = \"\(mountProgram)\"\n" }
        try conf.write(toFile: base + "/storage.conf", atomically: true, encoding: .utf8)
        if let user {
            for p in [base, base + "/root", base + "/runroot", base + "/tmp", base + "/storage.conf"] { user.own(p) }
        }
    }

    /// Limits every container gets. podman's defaults (1M) exceed this machine's hard limits and
    /// raising a limit needs CAP_SYS_RESOURCE, which a root shell here may lack; nproc 4096 is
    /// plenty for a test.
    var ulimits: [String] { PodmanStore.containerLimits }

    /// The same limits for a podman run outside a `PodmanStore` (the registry tests' own storage).
    static var containerLimits: [String] {
        var limit = rlimit()
        getrlimit(Int32(__RLIMIT_NPROC.rawValue), &limit)
        let nproc = min(UInt64(limit.rlim_max), 4096)
        return ["--ulimit", "nofile=\(nofileLimit):\(nofileLimit)", "--ulimit", "nproc=\(nproc):\(nproc)"]
    }

    /// The machine's hard open-files limit, at most 1M.
    static var nofileLimit: UInt64 {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return min(UInt64(limit.rlim_max), 1 << 20)
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
        try run(program: Self.podman, globalArguments + args, timeout: timeout)
    }

    /// Runs a podman-family program (podman, buildah) with this store's environment, as root or
    /// as the store's user (runuser, a clean login-like environment).
    func run(program: String, _ args: [String], timeout: TimeInterval) throws -> ProcessResult {
        guard let user else { return try Run.program(program, args, timeout: timeout, environment: environment) }
        let env = ["HOME": user.home, "USER": user.name, "LOGNAME": user.name, "XDG_RUNTIME_DIR": user.runtimeDir,
                   "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                   "CONTAINERS_STORAGE_CONF": base + "/storage.conf", "TMPDIR": base + "/tmp"]
        return try Run.program("/usr/sbin/runuser", ["-u", user.name, "--", "/usr/bin/env", "-i", "-C", user.home]
                               + env.keys.sorted().map { "\($0)=\(env[$0]!)" } + [program] + args,
                               timeout: timeout)
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

    /// The steps both podman tests share: build `context` as localhost/ufs-layer2, read it, run
    /// `steps` in a kept container "changer", `podman diff` it (sorted), commit it as
    /// localhost/ufs-committed and read that.
    func buildChangeCommit(context: String, steps: String) throws -> (read: String, diff: [String], committed: String) {
        try ok(["build", "--network", "none"] + ulimits + ["-t", "localhost/ufs-layer2", context], timeout: 300)
        let read = try shell("localhost/ufs-layer2", PodmanTests.readBothLayers)
        try shell("localhost/ufs-layer2", steps, name: "changer", keep: true)
        let diff = try ok(["diff", "changer"], timeout: 180).split(separator: "\n").map(String.init).sorted()
        try ok(["commit", "changer", "localhost/ufs-committed"], timeout: 300)
        return (read, diff, try shell("localhost/ufs-committed", PodmanTests.readCommitted))
    }

    /// `podman save` of `image` into the store's directory; the archive must list a manifest.
    func saveChecked(_ image: String) throws {
        let saved = base + "/saved.tar"
        try ok(["save", "-o", saved, image], timeout: 180)
        let listing = try Run.program("/bin/tar", ["-tf", saved], timeout: 60)
        XCTAssertEqual(listing.status, 0, "[\(name)] podman save wrote no valid tar: \(listing.stderr)")
        XCTAssertTrue(listing.stdout.contains("manifest.json"), "[\(name)] saved archive has no manifest")
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
