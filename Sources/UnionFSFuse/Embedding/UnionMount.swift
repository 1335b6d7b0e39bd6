import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// A layer stack mounted at a path by this process, served by threads of its own.
///
/// ```swift
/// let mount = try UnionMount(
///     LayerStackConfiguration(lowerdirs: ["/layers/app", "/layers/base"],
///                             upperdir: "/data/upper", workdir: "/data/work"),
///     at: "/mnt/rootfs")
/// // ... use /mnt/rootfs ...
/// mount.unmount()
/// ```
///
/// Unmounting is explicit (`unmount`), and also happens when the handle is released and when
/// the process exits normally. Several mounts may live in one process at once. Errors are
/// `ConfigurationError` values (what was wrong with the request), never printed.
public final class UnionMount: @unchecked Sendable {
    public let mountpoint: String
    public let fileSystem: UnionFileSystem
    private let session: FuseSession
    private let state = Mutex<State>(State())

    private struct State {
        var thread: pthread_t? = nil
        var unmounted = false
    }

    /// Mounts `configuration` at `mountpoint` and starts serving it. Returns once the mount is
    /// ready. `fuseOptions` are extra libfuse options (`allow_other` and `default_permissions`
    /// are added when running as root). Raises the process's soft limit of open files to its
    /// hard limit: a mount holds a descriptor per layer of every directory the kernel remembers.
    public convenience init(_ configuration: LayerStackConfiguration, at mountpoint: String,
                            options: FileSystemOptions = FileSystemOptions(), fuseOptions: [String] = [],
                            threads: Int = 8) throws(ConfigurationError) {
        try self.init(MountPlan.assemble(stack: configuration, fileSystem: options,
                                         fuseOptions: fuseOptions, threads: threads), at: mountpoint)
    }

    /// Mounts what `plan` says (`MountPlan.assemble`, or `MountOptions.plan` for `-o` strings,
    /// as the command line does) at `mountpoint` and starts serving it. The serving threads
    /// run with the plan's umask in a filesystem context of their own: the host's umask is
    /// left alone.
    public init(_ plan: MountPlan, at mountpoint: String) throws(ConfigurationError) {
        self.mountpoint = mountpoint
        Sys.raiseOpenFileLimit()
        let stack = try LayerStack(plan.stack)
        do { fileSystem = try UnionFileSystem(stack: stack, options: plan.fileSystem) } catch {
            throw UnionFSError("cannot read the layer roots", wrapping: error)
        }
        session = try FuseSession(fileSystem: fileSystem, mountpoint: mountpoint, fuseOptions: plan.fuseOptions,
                                  debug: plan.debug)
        let context = Unmanaged.passRetained(LoopContext(session: session, plan: plan)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let ctx = Unmanaged<LoopContext>.fromOpaque(arg!).takeRetainedValue()
            // libfuse's workers are started from this thread and share its context. Should the
            // thread not get one of its own, it serves with the host's umask rather than change it.
            try? ctx.plan.enterServingContext()
            _ = ctx.session.run(threads: ctx.plan.threads)
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<LoopContext>.fromOpaque(context).release()
            session.unmountNow()
            throw ConfigurationError("cannot start the request thread: \(Errno(rawValue: rc))")
        }
        state.withLock { $0.thread = thread }
        LiveMounts.shared.add(self)
    }

    /// Unmounts and waits for the request threads to finish. Idempotent.
    public func unmount() {
        let thread: pthread_t? = state.withLock { s in
            if s.unmounted { return nil }
            s.unmounted = true
            return s.thread
        }
        guard let thread else { return }
        session.unmountNow()
        pthread_join(thread, nil)
        LiveMounts.shared.remove(self)
    }

    deinit { unmount() }
}

/// What the request thread needs, handed over through pthread_create's argument.
private final class LoopContext {
    let session: FuseSession
    let plan: MountPlan
    init(session: FuseSession, plan: MountPlan) { self.session = session; self.plan = plan }
}

/// The process's live mounts, unmounted by an `atexit` handler on normal exit.
final class LiveMounts: Sendable {
    static let shared = LiveMounts()
    /// Lock order: leaf lock.
    private let mounts = Mutex<[ObjectIdentifier: Weak]>([:])

    private struct Weak { weak var mount: UnionMount? }

    private init() {
        atexit { LiveMounts.shared.unmountAll() }
    }

    func add(_ m: UnionMount) { mounts.withLock { $0[ObjectIdentifier(m)] = Weak(mount: m) } }
    func remove(_ m: UnionMount) { _ = mounts.withLock { $0.removeValue(forKey: ObjectIdentifier(m)) } }

    func unmountAll() {
        let all = mounts.withLock { m in m.values.compactMap(\.mount) }
        for m in all { m.unmount() }
    }
}
