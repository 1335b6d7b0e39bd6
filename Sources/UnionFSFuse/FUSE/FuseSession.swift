import CFuse3
import CLinux
import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// A FUSE session serving one `UnionFileSystem` at one mountpoint.
///
/// libfuse mounts and unmounts (`fuse_session_mount`: mount(2) as root, fusermount3 otherwise;
/// `fuse_session_unmount`); the requests are served by our own loop on the connection's
/// descriptor (`DeviceLoop`: the kernel protocol up to 7.45, spoken directly).
///
/// Life cycle: `init` creates the session and mounts (so the mount is ready when it returns),
/// `run` serves requests until the mount goes away (unmount or a signal), and `deinit`
/// unmounts and frees everything.
public final class FuseSession: @unchecked Sendable {
    public let fileSystem: UnionFileSystem
    public let mountpoint: String
    private let session: OpaquePointer
    /// What the session serves and what INIT agreed.
    private let connection: FuseConnection
    /// Cleared once, by whoever unmounts first: `unmountNow` may come from any thread.
    private let mounted = Atomic<Bool>(true)
    /// The signal watcher (`installSignalHandlers`), if any.
    private var signalWatcher: SignalWatcher?
    /// Requests, latencies and bytes (`unionfs-swift stats`, SIGUSR1).
    let stats: TransportStats
    /// Where the mount's readahead is set once INIT is agreed (`readahead=`); nil without the
    /// option, or when the mount cannot be found (said on stderr).
    private var readahead: MountReadahead?
    private let debug: Bool
    /// After `daemonize` forked: the pipe the parent waits on until the daemon serves, or -1.
    private var readyPipe: Int32 = -1

    /// Mounts `fileSystem` at `mountpoint` with extra mount options (`-o` style, comma-joined).
    public init(fileSystem: UnionFileSystem, mountpoint: String, fuseOptions: [String],
                debug: Bool = false) throws(ConfigurationError) {
        // The option first: its reason holds whatever else this machine lacks for a mount.
        if fileSystem.options.passthrough == .on, let reason = Self.passthroughUnavailable(fileSystem) {
            throw ConfigurationError("passthrough=on cannot be honoured: \(reason) (passthrough=auto uses it where it can)")
        }
        // uring=on that cannot be honoured fails before anything is mounted, saying how to fix it.
        if fileSystem.options.uring == .on && !UringSupport.enabled {
            throw ConfigurationError("uring=on: \(UringSupport.howToEnable)")
        }
        if fileSystem.options.uring == .on, case let e = -unionfs_uring_probe(), e != 0 {
            throw ConfigurationError("uring=on: \(DeviceReason.setupRefused(e))")
        }
        if let kib = fileSystem.options.readaheadKiB, !MountReadahead.permitted {
            throw ConfigurationError("readahead=\(kib) cannot be honoured: the kernel takes a FUSE mount's readahead from "
                                     + "/sys/class/bdi, which only root may write, and this process runs \(Privilege.current)")
        }
        try MountAccess.check(fuseOptions: fuseOptions)
        // Absolute: libfuse unmounts by this path, and `daemonize` moves the daemon to /, in
        // the foreground too (a relative one then named nothing: SIGTERM left the mount up, and
        // the unmount of a failed session said ENOENT and left a dead mount behind).
        let mountpoint = Self.absolute(mountpoint)
        self.debug = debug
        self.fileSystem = fileSystem
        self.mountpoint = mountpoint
        let stats = TransportStats()
        self.stats = stats
        connection = FuseConnection(fileSystem, stats: stats)
        // libfuse only mounts: its operations table stays empty, its loop never runs.
        var ops = fuse_lowlevel_ops()
        var argv: [String] = ["unionfs-swift"]
        // libfuse splits -o at commas; a comma inside a value (fsname, an SELinux context) is
        // escaped with a backslash, as are backslashes themselves.
        if !fuseOptions.isEmpty { argv += ["-o", fuseOptions.map(Self.escape).joined(separator: ",")] }
        var cArgs = argv.map { strdup($0) }
        let se: OpaquePointer? = cArgs.withUnsafeMutableBufferPointer { p in
            var args = fuse_args(argc: Int32(p.count), argv: p.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, nil)
        }
        for a in cArgs { free(a) }
        guard let se else { throw ConfigurationError("cannot start a FUSE session (see the message above)") }
        session = se
        let rc = mountpoint.withCString { fuse_session_mount(se, $0) }
        guard rc == 0 else {
            // Every stored property is set, so `deinit` runs after this throw and destroys the
            // session: destroying it here too would free it twice.
            mounted.store(false, ordering: .relaxed)
            throw ConfigurationError("cannot mount on '\(mountpoint)' (see the message above)")
        }
        if let kib = fileSystem.options.readaheadKiB {
            readahead = MountReadahead(mountpoint: mountpoint, kib: kib)
            if readahead == nil { MountReadahead.say("readahead=\(kib) not set: the mount at '\(mountpoint)' cannot be stat'ed") }
        }
    }

    /// Why this process cannot have FUSE passthrough, or nil when it may (the kernel still has
    /// to offer FUSE_PASSTHROUGH at INIT, which `DeviceLoop.handshake` checks).
    static func passthroughUnavailable(_ fs: UnionFileSystem) -> String? {
        if fs.options.writebackCache && !fs.isReadOnly {
            return "the kernel does not pass through with its writeback cache (writeback=1)"
        }
        let privilege = Privilege.current
        if !privilege.canWriteTrustedXattrs {
            return "registering backing files needs CAP_SYS_ADMIN in the initial user namespace, and this process runs \(privilege)"
        }
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        if parts.count == 2, (parts[0], parts[1]) < (6, 9) {
            return "FUSE passthrough needs Linux 6.9 or later, this kernel is \(release)"
        }
        return nil
    }

    /// `path` from the working directory, without resolving it (a dead mount there cannot be
    /// stat'ed, and the kernel resolves symlinks when it mounts).
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        let base = String(cString: cwd)
        return base == "/" ? "/" + path : base + "/" + path
    }

    static func escape(_ option: String) -> String {
        var out = ""
        for c in option {
            if c == "\\" || c == "," { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// SIGINT/SIGTERM/SIGHUP unmount cleanly, SIGUSR1 writes the stats: the signals are blocked
    /// in this thread and every worker started after it, and one watcher thread takes them
    /// (`SignalWatcher`); unmounting ends every worker's read with `ENODEV`.
    public func installSignalHandlers() {
        signalWatcher = SignalWatcher()
    }

    /// Detaches from the terminal (forks) unless `foreground`. Call before any thread starts.
    ///
    /// The parent waits until the daemon serves (INIT agreed, transport chosen: `run`) and
    /// exits 0, or until the daemon exits without serving and exits 1, after the daemon
    /// unmounted and said why on the caller's stderr. (libfuse's `fuse_daemonize` let the
    /// parent exit 0 before INIT, so `uring=on` or `passthrough=on` refused at INIT made the
    /// command succeed and the mount vanish, its message sent to /dev/null.) Throws when the
    /// pipe or the fork is refused (a limit on descriptors or processes); the session then
    /// unmounts. Both processes move to / (the mountpoint is absolute, `init`).
    public func daemonize(foreground: Bool) throws(ConfigurationError) {
        _ = chdir("/")
        guard !foreground else { return }
        var ends: [Int32] = [-1, -1]
        // Close-on-exec, so no helper (fusermount3) holds the parent waiting.
        guard pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0 else {
            throw ConfigurationError("cannot go to the background: pipe: \(String(cString: strerror(errno))); nothing stays mounted")
        }
        let child = fork()
        if child < 0 {
            let e = errno
            close(ends[0])
            close(ends[1])
            throw ConfigurationError("cannot go to the background: fork: \(String(cString: strerror(e))); nothing stays mounted")
        }
        if child > 0 {
            // The parent: one byte when the daemon serves; end of file when it exited.
            close(ends[1])
            var served: UInt8 = 0
            var n: Int
            repeat { n = read(ends[0], &served, 1) } while n < 0 && errno == EINTR
            _exit(n == 1 ? 0 : 1)
        }
        close(ends[0])
        _ = setsid()
        readyPipe = ends[1]
    }

    /// Tells the waiting parent the daemon serves, and lets go of the caller's terminal or
    /// pipe (stdin, stdout and stderr become /dev/null), as a background daemon does.
    private func reportServing() {
        guard readyPipe >= 0 else { return }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        if null >= 0 {
            for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] { dup2(null, fd) }
            close(null)
        }
        var served: UInt8 = 1
        _ = write(readyPipe, &served, 1)
        close(readyPipe)
        readyPipe = -1
    }

    /// Serves requests with `threads` workers until unmounted: 0 then, 1 when the kernel's
    /// INIT could not be agreed or a CPU queue of the ring was left with no worker.
    public func run(threads: Int) -> Int32 {
        signalWatcher?.start(onStats: { [unowned self] in self.writeStats() }, onEnd: { [unowned self] in self.unmountNow() })
        defer {
            signalWatcher?.stop()
            // The report goes with the daemon: the next process given this pid may be another
            // user's, and could not replace a file of ours in a sticky /tmp.
            let path = Self.statsPath(pid: getpid(), uid: geteuid())
            unlink(path)
            unlink(path + ".tmp")
        }
        let loop = DeviceLoop(connection: connection, fd: fuse_session_fd(session), stats: stats, debug: debug,
                              uring: connection.fileSystem.options.uring,
                              uringIdle: connection.fileSystem.options.uringIdle, readahead: readahead)
        loop.onRingLost = { [unowned self] in self.unmountNow() }
        loop.onServing = { [unowned self] in self.reportServing() }
        return loop.run(threads: threads)
    }

    /// The counters as a table (`unionfs-swift stats`).
    public func statsReport() -> String { stats.report() }

    /// Where `unionfs-swift stats` finds the report of the daemon `pid` running as `uid`. The
    /// uid is in the name so that daemons of different users never share one, whatever pids
    /// the system reuses: in a sticky /tmp none could replace another user's file.
    public static func statsPath(pid: pid_t, uid: uid_t) -> String {
        let dir = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) } ?? "/tmp"
        return "\(dir)/unionfs-swift-\(uid)-\(pid).stats"
    }

    /// Writes the report to stderr and, whole (a rename), to `statsPath` (on SIGUSR1).
    func writeStats() {
        let text = "unionfs-swift \(mountpoint)\n" + stats.report()
        _ = Array(text.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
        let path = Self.statsPath(pid: getpid(), uid: geteuid()), temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        let ok = Array(text.utf8).withUnsafeBytes { b in (try? Sys.write(fd, b)) == b.count }
        Sys.close(fd)
        if ok { rename(temp, path) } else { unlink(temp) }
    }

    /// Ends the session: unmounts, which ends the loop (`unmountNow`).
    public func exit() { unmountNow() }

    /// Unmounts now: the kernel ends the connection, so the workers blocked reading requests
    /// return and `run` comes back. Safe to call from any thread, more than once.
    public func unmountNow() {
        guard mounted.exchange(false, ordering: .acquiringAndReleasing) else { return }
        fuse_session_unmount(session)
    }

    deinit {
        if mounted.load(ordering: .acquiring) { fuse_session_unmount(session) }
        fuse_session_destroy(session)
    }
}
