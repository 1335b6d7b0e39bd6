import ArgumentParser
import Glibc
import UnionFS

/// Mounts the merged view: `unionfs-swift [-f] [-d] -o lowerdir=A:B,upperdir=U,workdir=W MOUNTPOINT`,
/// or as mount.fuse3 calls it, `unionfs-swift SOURCE MOUNTPOINT -o OPTIONS`.
struct MountCommand: ParsableCommand {
    /// Every mount option and its meaning (shown by `--help` of the root command and of `mount`).
    static let optionsHelp = """
    Options (-o, comma-separated, repeatable):
      lowerdir=A[:B...]  lower layers, top first ('\\:' is a colon in a path)
      upperdir=DIR       copy-on-write layer (needs workdir); else read-only
      workdir=DIR        empty staging dir on the upper's filesystem
      xattr_namespace=trusted|user|auto  where whiteout/opaque xattrs are
                         written: auto (default) picks trusted.overlay.* with
                         CAP_SYS_ADMIN in the initial user namespace, else
                         user.overlay.* (rootless); lowers are read in both
      userxattr          the kernel's spelling of xattr_namespace=user
      no_oci_whiteouts   ignore .wh.NAME/.wh..wh..opq in lowers (as the kernel)
      ro                 refuse every change, even with an upperdir
      volatile           no fsync of copied-up data (a host crash may lose it)
      fsync=0|1          fuse-overlayfs's form: fsync=0 is volatile
      writeback=0|1      the kernel's writeback cache (0): with 1, data reaches
                     the upper dir at close/fsync, not at each write
      rename_exdev       EXDEV for renaming a dir with lower content, as the
                         kernel does (default: copy the subtree up and move it)
      timeout=SECONDS    kernel cache time for entries/attributes (86400)
      threads=N          request worker threads (8)
      uidmapping=D:S:N[:D:S:N...]  show disk uid D.. as S.. (N ids), store back
      gidmapping=D:S:N[:D:S:N...]  the same for gids; unmapped ids show as 65534
      squash_to_uid=N    show every file as owned by uid N (also _gid=N)
      squash_to_root     show every file as owned by 0:0
      static_nlink       report nlink 1 for every directory
      noacl              refuse POSIX ACL xattrs
      xattr_permissions=1|2  keep owner/mode in user.fuseoverlayfs. (1) or
                         user.containers.override_stat (2) xattrs (rootless)
      private, shared, slave  mount propagation words; no effect on the mount
      context="..."      SELinux label for every file (also fscontext=,
                         defcontext=, rootcontext=); ignored without SELinux
      debug              trace every FUSE request (as -d)
      Generic options go to libfuse: allow_other, default_permissions, nodev,
      nosuid, noexec, noatime, fsname=, subtype=, and the like.
      Anything else is an error that names the option.
    """

    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount layers at MOUNTPOINT (the default command).",
        discussion: MountCommand.optionsHelp
    )

    @Option(name: .short, help: ArgumentHelp("Mount options (see below).", valueName: "options"))
    var o: [String] = []

    @Flag(name: .short, help: "Stay in the foreground.")
    var f = false

    @Flag(name: .short, help: "Debug: stay in the foreground and trace every request.")
    var d = false

    @Flag(name: .short, help: "Serve requests on one thread.")
    var s = false

    @Argument(help: ArgumentHelp("[SOURCE] MOUNTPOINT (SOURCE, as mount(8) passes it, becomes fsname).",
                                 valueName: "mountpoint"))
    var arguments: [String] = []

    func validate() throws {
        guard (1...2).contains(arguments.count) else {
            throw ValidationError(arguments.isEmpty ? "missing MOUNTPOINT" : "too many arguments: \(arguments.joined(separator: " "))")
        }
    }

    func run() throws {
        let options = try MountOptions.parse(o)
        let mountpoint = arguments.last!
        let source = arguments.count == 2 ? arguments[0] : nil
        try MountPreflight.serve(options, at: mountpoint, source: source, foreground: f, debug: d, singleThread: s)
    }
}

/// Checks made before mounting, so each problem gets one clear line and nothing is mounted.
enum MountPreflight {
    /// Mounts and serves until unmounted: in the background (the parent returns once the mount
    /// is up) unless `foreground` or `debug`. The layers are checked first (a problem with them
    /// is the most specific thing to report), then the mountpoint.
    static func serve(_ options: MountOptions, at mountpoint: String, source: String?,
                      foreground: Bool, debug: Bool, singleThread: Bool) throws {
        var options = options
        Sys.raiseOpenFileLimit()
        let stack = try LayerStack(options.stack)
        if debug || options.debug {
            let why = stack.xattrNamespaceDetected ? "chosen: \(Privilege.current)" : "given by an option"
            printError("unionfs-swift: overlay xattrs in \(stack.xattrNamespace.overlayPrefix)* (\(why))")
        }
        try MountPreflight.check(mountpoint: mountpoint)
        let fs: UnionFileSystem
        do { fs = try UnionFileSystem(stack: stack, options: options.fileSystem) } catch {
            throw ConfigurationError("cannot read the layer roots: \(error)")
        }
        options.addDefaultFuseOptions(source: source, isRoot: geteuid() == 0)
        options.dropLabelOptions(selinuxEnabled: access("/sys/fs/selinux", F_OK) == 0)
        let session = try FuseSession(fileSystem: fs, mountpoint: mountpoint,
                                      fuseOptions: options.fuseOptions, debug: debug || options.debug)
        umask(0)  // modes arrive with the caller's umask applied; keep them exact
        session.installSignalHandlers()
        session.daemonize(foreground: foreground || debug || options.debug)
        let rc = session.run(threads: singleThread ? 1 : options.threads)
        if rc != 0 { throw ExitCode(1) }
    }

    static func check(mountpoint: String) throws(ConfigurationError) {
        try MountAccess.checkDevice("/dev/fuse")
        var st = stat()
        if lstat(mountpoint, &st) != 0 {
            let e = errno
            if e == ENOTCONN {
                throw ConfigurationError("mountpoint '\(mountpoint)' is a dead FUSE mount: unmount it first (fusermount3 -u)")
            }
            throw ConfigurationError("mountpoint '\(mountpoint)': \(String(cString: strerror(e)))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw ConfigurationError("mountpoint '\(mountpoint)' is not a directory")
        }
        var parent = stat()
        if lstat(mountpoint + "/..", &parent) == 0,
           parent.st_dev != st.st_dev || parent.st_ino == st.st_ino {
            throw ConfigurationError("mountpoint '\(mountpoint)' is busy: something is already mounted there")
        }
    }
}

extension MountOptions {
    /// Adds what the mount needs unless the user said otherwise: the kernel checks permissions
    /// (`default_permissions`), other users see the mount when root (`allow_other`), and
    /// /proc/mounts names it `fuse.unionfs-swift` with the source as fsname.
    mutating func addDefaultFuseOptions(source: String?, isRoot: Bool) {
        func has(_ key: String) -> Bool {
            fuseOptions.contains { $0 == key || $0.hasPrefix(key + "=") }
        }
        if !has("default_permissions") { fuseOptions.append("default_permissions") }
        if isRoot && !has("allow_other") { fuseOptions.append("allow_other") }
        if !has("fsname") { fuseOptions.append("fsname=" + (source ?? "unionfs-swift")) }
        if !has("subtype") { fuseOptions.append("subtype=unionfs-swift") }
    }

    /// SELinux label options (podman adds `context="…"` when SELinux is on) go to the kernel
    /// only where SELinux is enabled: elsewhere there is nothing to label with and the kernel
    /// refuses the whole mount (EINVAL). fuse-overlayfs accepts `context=` and never passes it on.
    mutating func dropLabelOptions(selinuxEnabled: Bool) {
        guard !selinuxEnabled else { return }
        let labels = ["context=", "fscontext=", "defcontext=", "rootcontext="]
        fuseOptions.removeAll { o in labels.contains { o.hasPrefix($0) } }
    }
}
