import Glibc
import SystemPackage

/// Everything a mount is made of besides its layers' contents, assembled in one place
/// (`MountPlan.assemble`) for the command line, `UnionMount` and the C API alike, as a plain
/// value: the FUSE session consumes it whatever carries the requests (our own `/dev/fuse`
/// transport today; libfuse only mounts and unmounts).
///
/// Before this, an embedded mount skipped what the command line did (its umask, the label
/// options), so the modes of files created through it could differ.
public struct MountPlan: Sendable, Equatable {
    public var stack: LayerStackConfiguration
    public var fileSystem: FileSystemOptions
    /// The libfuse `-o` options, complete: the user's, the defaults added (`default_permissions`,
    /// `allow_other` as root, `fsname`, `subtype`), SELinux labels dropped where SELinux is off.
    public var fuseOptions: [String]
    /// The umask the serving threads run with. 0: every mode the daemon creates with already
    /// had the caller's umask applied (by the kernel, or by the daemon itself under DONT_MASK,
    /// `FuseConnection.creationMode`), so a second one (the server's) would make modes differ.
    public var umask: mode_t
    public var threads: Int
    public var debug: Bool

    /// Assembles a plan from what the user gave. `source` is mount(8)'s SOURCE (the fsname);
    /// `isRoot` and `selinuxEnabled` default to this process and machine.
    public static func assemble(stack: LayerStackConfiguration, fileSystem: FileSystemOptions,
                                fuseOptions: [String], threads: Int = 8, debug: Bool = false,
                                source: String? = nil, isRoot: Bool = Sys.geteuid() == 0,
                                selinuxEnabled: Bool = MountPlan.selinuxEnabled) -> MountPlan {
        var options = fuseOptions
        func has(_ key: String) -> Bool { options.contains { $0 == key || $0.hasPrefix(key + "=") } }
        // The kernel checks permissions; other users see the mount when root; /proc/mounts
        // names it fuse.unionfs-swift with the source as fsname.
        if !has("default_permissions") { options.append("default_permissions") }
        if isRoot && !has("allow_other") { options.append("allow_other") }
        if !has("fsname") { options.append("fsname=" + (source ?? "unionfs-swift")) }
        if !has("subtype") { options.append("subtype=unionfs-swift") }
        // SELinux label options (podman adds context="…" when SELinux is on) go to the kernel
        // only where SELinux is enabled: elsewhere the kernel refuses the whole mount (EINVAL).
        // fuse-overlayfs accepts context= and never passes it on.
        if !selinuxEnabled {
            let labels = ["context=", "fscontext=", "defcontext=", "rootcontext="]
            options.removeAll { o in labels.contains { o.hasPrefix($0) } }
        }
        // A stack without an upper (or with `ro`) is read-only to the VFS as well, as kernel
        // overlayfs makes it (its superblock gets SB_RDONLY; a `rw` given with it means nothing
        // there either): /proc/mounts and statvfs say `ro`, writes fail with EROFS without a
        // round trip, and the kernel stops invalidating the cached atime after every listing
        // and read, which otherwise costs one GETATTR per directory on the next walk.
        if fileSystem.readOnly || stack.upperdir == nil {
            options.removeAll { $0 == "rw" }
            if !options.contains("ro") { options.append("ro") }
        }
        return MountPlan(stack: stack, fileSystem: fileSystem, fuseOptions: options, umask: 0,
                         threads: threads, debug: debug)
    }

    /// Whether SELinux is enabled on this machine (its filesystem is mounted).
    public static var selinuxEnabled: Bool { Sys.access("/sys/fs/selinux", F_OK) }

    /// Gives the calling thread its own filesystem context with the plan's umask: called by the
    /// thread that serves requests before it starts (the threads it starts inherit both), so
    /// a mount inside a host process leaves the host's umask alone. Throws when the thread
    /// cannot have its own context; then nothing changed.
    public func enterServingContext() throws(Errno) {
        try Sys.unshareFilesystemContext()
        Sys.umask(umask)
    }
}

extension MountOptions {
    /// The plan of a mount from parsed `-o` options (the command line's and the C API's path).
    public func plan(source: String? = nil) -> MountPlan {
        MountPlan.assemble(stack: stack, fileSystem: fileSystem, fuseOptions: fuseOptions,
                           threads: threads, debug: debug, source: source)
    }
}
