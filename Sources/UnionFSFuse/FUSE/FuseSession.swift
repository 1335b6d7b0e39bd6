import CFuse3
import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// Which loop serves a session's requests.
public enum FuseTransport: String, Sendable, CaseIterable {
    /// libfuse 3.14's multi-threaded loop, with the INIT reply completed by `DeviceIO`.
    case libfuse
    /// Our own (`DeviceLoop`): the kernel protocol up to 7.45 spoken directly on `/dev/fuse`.
    case device = "dev"

    /// `UNIONFS_TRANSPORT` (`libfuse` or `dev`) when set to one of them, else libfuse's loop.
    public static var fromEnvironment: FuseTransport {
        getenv("UNIONFS_TRANSPORT").flatMap { FuseTransport(rawValue: String(cString: $0)) } ?? .libfuse
    }
}

/// A FUSE session serving one `UnionFileSystem` at one mountpoint.
///
/// Life cycle: `init` creates the session and mounts (so the mount is ready when it returns),
/// `run` serves requests until the mount goes away (unmount or a signal), and `deinit`
/// unmounts and frees everything. libfuse mounts and unmounts (`fuse_session_mount`: mount(2)
/// as root, fusermount3 otherwise); the requests are served by the `transport`'s loop.
public final class FuseSession: @unchecked Sendable {
    public let fileSystem: UnionFileSystem
    public let mountpoint: String
    private let session: OpaquePointer
    /// The session's userdata: kept alive as long as the session.
    private let connection: FuseConnection
    /// Cleared once, by whoever unmounts first: `unmountNow` may come from any thread.
    private let mounted = Atomic<Bool>(true)
    private var signalsInstalled = false
    public let transport: FuseTransport
    /// The device transport's signal watcher (`installSignalHandlers`), if any.
    private var signalWatcher: SignalWatcher?
    /// Requests, latencies and bytes of the device transport (`statsReport`).
    let stats = TransportStats()
    private let debug: Bool

    /// Mounts `fileSystem` at `mountpoint` with extra libfuse options (`-o` style, comma-joined).
    public init(fileSystem: UnionFileSystem, mountpoint: String, fuseOptions: [String],
                debug: Bool = false, transport: FuseTransport = .fromEnvironment) throws(ConfigurationError) {
        try MountAccess.check(fuseOptions: fuseOptions)
        self.transport = transport
        self.debug = debug
        self.fileSystem = fileSystem
        self.mountpoint = mountpoint
        connection = FuseConnection(fileSystem)
        var ops = Bridge.operations()
        var argv: [String] = ["unionfs-swift"]
        if debug { argv.append("-d") }
        // libfuse splits -o at commas; a comma inside a value (fsname, an SELinux context) is
        // escaped with a backslash, as are backslashes themselves.
        if !fuseOptions.isEmpty { argv += ["-o", fuseOptions.map(Self.escape).joined(separator: ",")] }
        var cArgs = argv.map { strdup($0) }
        let userdata = Unmanaged.passUnretained(connection).toOpaque()
        let se: OpaquePointer? = cArgs.withUnsafeMutableBufferPointer { p in
            var args = fuse_args(argc: Int32(p.count), argv: p.baseAddress, allocated: 0)
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
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
        guard transport == .device || DeviceIO.install(on: se) else {
            throw ConfigurationError("cannot set up the FUSE device of '\(mountpoint)'")
        }
    }

    static func escape(_ option: String) -> String {
        var out = ""
        for c in option {
            if c == "\\" || c == "," { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// Installs libfuse's handlers so SIGINT/SIGTERM/SIGHUP end the loop and unmount cleanly.
    /// With our own transport, the signals are blocked in every thread and one watcher thread
    /// waits for them and unmounts, which ends every worker's read with `ENODEV`.
    public func installSignalHandlers() {
        if transport == .device {
            signalWatcher = SignalWatcher()
            return
        }
        if fuse_set_signal_handlers(session) == 0 { signalsInstalled = true }
        // `unionfs-swift stats` sends SIGUSR1, whose default would end the daemon.
        signal(SIGUSR1, SIG_IGN)
    }

    /// Detaches from the terminal (forks) unless `foreground`. Call before any thread starts.
    public func daemonize(foreground: Bool) {
        _ = fuse_daemonize(foreground ? 1 : 0)
    }

    /// Serves requests until unmounted. Returns libfuse's loop result (0 on clean exit).
    public func run(threads: Int) -> Int32 {
        if transport == .device {
            signalWatcher?.start(onStats: { [unowned self] in self.writeStats() }, onEnd: { [unowned self] in self.unmountNow() })
            defer { signalWatcher?.stop() }
            return DeviceLoop(connection: connection, fd: fuse_session_fd(session), stats: stats, debug: debug).run(threads: threads)
        }
        if threads <= 1 { return fuse_session_loop(session) }
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_max_threads(config, UInt32(clamping: threads))
        fuse_loop_cfg_set_clone_fd(config, 1)
        return fuse_session_loop_mt(session, config)
    }

    /// The device transport's counters as a table (empty with libfuse's loop).
    public func statsReport() -> String { transport == .device ? stats.report() : "" }

    /// Where `unionfs-swift stats` finds the report of the daemon `pid`.
    public static func statsPath(pid: pid_t) -> String {
        let dir = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) } ?? "/tmp"
        return "\(dir)/unionfs-swift-\(pid).stats"
    }

    /// Writes the report to stderr and, whole (a rename), to `statsPath` (on SIGUSR1).
    func writeStats() {
        let text = "unionfs-swift \(mountpoint)\n" + stats.report()
        _ = Array(text.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
        let path = Self.statsPath(pid: getpid()), temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        let ok = Array(text.utf8).withUnsafeBytes { b in (try? Sys.write(fd, b)) == b.count }
        Sys.close(fd)
        if ok { rename(temp, path) } else { unlink(temp) }
    }

    /// Asks the loop to stop (it returns once the current requests are done).
    public func exit() { fuse_session_exit(session) }

    /// Stops the loop and unmounts now: the kernel ends the connection, so the workers blocked
    /// reading requests return and `run` comes back. Safe to call from another thread.
    public func unmountNow() {
        guard mounted.exchange(false, ordering: .acquiringAndReleasing) else { return }
        fuse_session_exit(session)
        fuse_session_unmount(session)
    }

    deinit {
        if signalsInstalled { fuse_remove_signal_handlers(session) }
        if mounted.load(ordering: .acquiring) { fuse_session_unmount(session) }
        fuse_session_destroy(session)
    }
}
