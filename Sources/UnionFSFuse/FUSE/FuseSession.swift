import CFuse3
import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// A FUSE session serving one `UnionFileSystem` at one mountpoint.
///
/// Life cycle: `init` creates the session and mounts (so the mount is ready when it returns),
/// `run` serves requests on libfuse's multi-threaded loop until the mount goes away (unmount or
/// a signal), and `deinit` unmounts and frees everything.
public final class FuseSession: @unchecked Sendable {
    public let fileSystem: UnionFileSystem
    public let mountpoint: String
    private let session: OpaquePointer
    /// The session's userdata: kept alive as long as the session.
    private let connection: FuseConnection
    /// Cleared once, by whoever unmounts first: `unmountNow` may come from any thread.
    private let mounted = Atomic<Bool>(true)
    private var signalsInstalled = false

    /// Mounts `fileSystem` at `mountpoint` with extra libfuse options (`-o` style, comma-joined).
    public init(fileSystem: UnionFileSystem, mountpoint: String, fuseOptions: [String],
                debug: Bool = false) throws(ConfigurationError) {
        try MountAccess.check(fuseOptions: fuseOptions)
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
        guard DeviceIO.install(on: se) else {
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
    public func installSignalHandlers() {
        if fuse_set_signal_handlers(session) == 0 { signalsInstalled = true }
    }

    /// Detaches from the terminal (forks) unless `foreground`. Call before any thread starts.
    public func daemonize(foreground: Bool) {
        _ = fuse_daemonize(foreground ? 1 : 0)
    }

    /// Serves requests until unmounted. Returns libfuse's loop result (0 on clean exit).
    public func run(threads: Int) -> Int32 {
        if threads <= 1 { return fuse_session_loop(session) }
        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_max_threads(config, UInt32(clamping: threads))
        fuse_loop_cfg_set_clone_fd(config, 1)
        return fuse_session_loop_mt(session, config)
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
