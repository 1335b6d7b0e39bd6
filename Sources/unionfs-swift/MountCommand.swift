import ArgumentParser
import Glibc
import UnionFS

/// Mounts the merged view: `unionfs-swift [-f] [-d] -o lowerdir=A:B,upperdir=U,workdir=W MOUNTPOINT`,
/// or as mount.fuse3 calls it, `unionfs-swift SOURCE MOUNTPOINT -o OPTIONS`.
struct MountCommand: ParsableCommand {
    /// Every mount option and its meaning (shown by `--help` of the root command and of
    /// `mount`), rendered from the table the option parser reads.
    static let optionsHelp = MountOptions.help

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
        var plan = options.plan(source: source)
        plan.debug = plan.debug || debug
        if singleThread { plan.threads = 1 }
        Sys.raiseOpenFileLimit()
        Sys.limitMallocArenas()
        let stack = try LayerStack(plan.stack)
        if plan.debug {
            let why = stack.xattrNamespaceDetected ? "chosen: \(Privilege.current)" : "given by an option"
            printError("unionfs-swift: overlay xattrs in \(stack.xattrNamespace.overlayPrefix)* (\(why))")
            if stack.isWritable {
                let form = stack.whiteoutForm == .oci ? "OCI .wh. files" : "0:0 character devices"
                printError("unionfs-swift: whiteouts as \(form) (\(stack.whiteoutFormReason))")
            }
        }
        try MountPreflight.check(mountpoint: mountpoint)
        let fs: UnionFileSystem
        do { fs = try UnionFileSystem(stack: stack, options: plan.fileSystem) } catch {
            throw UnionFSError("cannot read the layer roots", wrapping: error)
        }
        let session = try FuseSession(fileSystem: fs, mountpoint: mountpoint,
                                      fuseOptions: plan.fuseOptions, debug: plan.debug)
        session.installSignalHandlers()
        try session.daemonize(foreground: foreground || plan.debug)
        // After the fork: the serving process's own context (the whole daemon, here).
        do { try plan.enterServingContext() } catch { Sys.umask(plan.umask) }
        let rc = session.run(threads: plan.threads)
        if rc != 0 { throw ExitCode(1) }
    }

    static func check(mountpoint: String) throws(ConfigurationError) {
        try MountAccess.checkDevice("/dev/fuse")
        let st: stat
        do { st = try Sys.pathStat(mountpoint) } catch .socketNotConnected {
            throw ConfigurationError("mountpoint '\(mountpoint)' is a dead FUSE mount: unmount it first (fusermount3 -u)")
        } catch {
            throw ConfigurationError("mountpoint '\(mountpoint)': \(error)")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw ConfigurationError("mountpoint '\(mountpoint)' is not a directory")
        }
        if let parent = try? Sys.pathStat(mountpoint + "/.."),
           parent.st_dev != st.st_dev || parent.st_ino == st.st_ino {
            throw ConfigurationError("mountpoint '\(mountpoint)' is busy: something is already mounted there")
        }
    }
}
