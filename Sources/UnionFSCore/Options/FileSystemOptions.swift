/// Settings of a mounted filesystem that are not about the layers.
public struct FileSystemOptions: Sendable, Equatable {
    /// How long the kernel may cache entries, attributes and negative lookups, in seconds. Long
    /// is safe: every change goes through the mount, and the kernel updates what it cached for
    /// each change it makes.
    public var timeout: Double = 86400
    /// Refuse every change with `EROFS`, even with an upper.
    public var readOnly: Bool = false
    /// Skip `fsync` of copied-up data before it lands (the kernel's `volatile`): faster, but a
    /// crash of the machine (not of the daemon) may leave empty or partial files in the upper.
    public var volatile: Bool = false
    /// Answer `EXDEV` to renaming a directory with lower content, as the kernel does without
    /// `redirect_dir`, instead of copying the subtree up.
    public var renameDirectoriesEXDEV: Bool = false
    /// Ask the kernel for its writeback cache on writable mounts (`writeback=1`): writes gather
    /// in the page cache and reach the daemon in large blocks, instead of one round trip (plus
    /// one for `security.capability`) per write call. Off by default: data then reaches the
    /// upper file only at close, fsync or writeback, so a reader of the upper dir itself (a diff
    /// of a live mount) would see it late. Measured gain on untar of small files: about 5%.
    public var writebackCache: Bool = false
    /// Let the kernel choose READDIR or READDIRPLUS itself (`readdirplus=auto`): plus only for
    /// a directory's first chunk and after lookups in it. The default (`always`) asks for every
    /// chunk with the attributes: `find`, `ls -l`, `tar` and package managers list and then stat,
    /// and under `auto` each name past the first chunk costs a LOOKUP round trip (a cold walk of
    /// a 92k-entry tree sent 58k LOOKUPs, and none with `always`). `auto` is cheaper for
    /// listings nobody stats (`ls -f` of a 29k-entry directory: 56 ms against 464 ms).
    public var readdirplusAuto: Bool = false
    /// FUSE passthrough (`passthrough=auto|on|off`, Linux 6.9+): reads, writes and mmap of an
    /// open file go from the kernel straight to the layer's file, never through the daemon.
    /// `auto` uses it where the kernel allows it (CAP_SYS_ADMIN in the initial user namespace,
    /// FUSE_PASSTHROUGH offered at INIT, no writeback cache) and is silently off elsewhere;
    /// `on` refuses to mount where it cannot be had. Which files get it: `PassthroughFiles`.
    public var passthrough: FeatureChoice = .auto
    /// The kernel's readahead for files read through the daemon, in KiB (`readahead=KIB`, root
    /// only); nil: the kernel's 128 KiB. The kernel starts every FUSE mount there and never
    /// raises it from INIT, so it is set afterwards in the mount's backing device info
    /// (`MountReadahead`). Larger helps sequential reads (fewer READs) and costs random page
    /// faults in mapped files, which read the whole window around themselves.
    public var readaheadKiB: Int? = nil

    /// Owners shown through the mount (uidmapping, gidmapping, squash_to_*).
    public var idMapping = IDMapping()
    /// Report nlink 1 for every directory.
    public var staticDirectoryNlink = false
    /// Refuse POSIX ACL xattrs (`system.posix_acl_*`) with `EOPNOTSUPP` (fuse-overlayfs's
    /// `noacl`); the kernel is then not asked to check ACLs (no FUSE_POSIX_ACL) either.
    public var noACL = false
    /// Which transport carries requests (`uring=auto|on|off`): FUSE over io_uring (Linux 6.14+,
    /// one ring queue per CPU, a request and its reply in one `io_uring_enter` instead of a read
    /// and a writev) or `/dev/fuse`. `auto` uses the ring when the fuse module's `enable_uring`
    /// parameter is on and the kernel agrees FUSE_OVER_IO_URING at INIT; `on` fails the mount
    /// otherwise; `off` never asks.
    public var uring: FeatureChoice = .auto
    /// Whether ring workers wait for requests at `SCHED_IDLE` (`uring_idle=auto|off`), so that
    /// a reply wakes its caller on the worker's CPU rather than on another, idle, one; back to
    /// normal while a request would wait on a worker that does not get the CPU. `auto` where
    /// the daemon may leave `SCHED_IDLE` again (root); io_uring only (`IdleWaitGuard`).
    public var uringIdle = true
    /// Keep owner and mode in an xattr instead of the file's own (1: `user.fuseoverlayfs.override_stat`,
    /// 2: `user.containers.override_stat`), for rootless use where chown is not possible. 0: off.
    public var xattrPermissions = 0
    /// How many layer directories stay open before nodes give theirs back; nil: three quarters
    /// of the open-files limit when the filesystem is made (`DescriptorBudget`).
    public var descriptorBudget: DescriptorBudget? = nil

    public init(timeout: Double = 86400, readOnly: Bool = false, volatile: Bool = false,
                renameDirectoriesEXDEV: Bool = false) {
        self.timeout = timeout
        self.readOnly = readOnly
        self.volatile = volatile
        self.renameDirectoriesEXDEV = renameDirectoriesEXDEV
    }
}

/// A feature used where it can be (`auto`), required (`on`: the mount fails with the reason
/// where it cannot be had) or never asked for (`off`): `uring=` and `passthrough=`.
public enum FeatureChoice: String, Sendable, Equatable {
    case auto, on, off
}
