import ArgumentParser
import Glibc
import UnionFS
import UnionFSImages

/// `unionfs-swift image …`: image archives and the layer store they are unpacked into.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Load, mount, commit and save container images in a shared layer store.",
        discussion: """
        The store (--store, default /var/lib/unionfs-swift for root, else \
        $XDG_DATA_HOME/unionfs-swift) keeps each layer unpacked once, keyed by chain ID, as a \
        lower dir shared by every image that has it.
        """,
        subcommands: [ImageLoadCommand.self, ImageListCommand.self, ImageRemoveCommand.self,
                      ImageMountCommand.self, ImageCommitCommand.self, ImageSaveCommand.self,
                      ImageExportCommand.self, ImageImportCommand.self, ImagePruneCommand.self,
                      ImagePullCommand.self, ImagePushCommand.self, ImageLoginCommand.self, ImageLogoutCommand.self]
    )
}

/// The --store option every image command takes, and the read-only stores to look in too.
struct StoreOption: ParsableArguments {
    @Option(help: ArgumentHelp("The layer store directory (opened read-only, with no lock taken, when it cannot be written).", valueName: "dir"))
    var store: String?
    @Option(name: .customLong("additional-store"),
            help: ArgumentHelp("A read-only store whose images and layers are used in place (repeatable; searched after --store, before pulling).", valueName: "dir"))
    var additionalStores: [String] = []

    func open() throws -> ImageStore {
        let s = try ImageStore(root: store)
        for a in additionalStores { try s.addAdditionalStore(a) }
        return s
    }
}

struct ImageLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load an OCI layout (directory or tar) or a docker-archive into the store.",
        discussion: "Every blob is checked against its digest; on any error the store is left as it was."
    )
    @OptionGroup var storeOption: StoreOption
    @Option(help: ArgumentHelp("Pick this platform from a multi-platform index (default: this machine's).", valueName: "os/arch[/variant]"))
    var platform: String?
    @Option(help: ArgumentHelp("Also name the loaded image REF.", valueName: "ref"))
    var tag: String?
    @Flag(help: "Print only the result, never progress.")
    var quiet = false
    @Argument(help: "The archive.")
    var archive: String

    func run() throws {
        let store = try storeOption.open()
        let progress = StageProgress(enabled: !quiet)
        defer { progress.end() }
        let records = try store.load(archive: archive, platform: platform, tag: tag, progress: progress.callback)
        progress.end()
        try writeStdout(records.map { "Loaded image: \($0.name ?? $0.config.description)\n" }.joined())
    }
}

struct ImageListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the images (or --layers) in the store.")
    @OptionGroup var storeOption: StoreOption
    @Flag(help: "List the layers: chain ID, diffID, size, images using it.")
    var layers = false
    @Flag(help: "Print full IDs.")
    var noTrunc = false

    func run() throws {
        let store = try storeOption.open()
        var rows: [[String]]
        if layers {
            rows = [["CHAIN ID", "DIFF ID", "SIZE", "IMAGES"]]
            for l in try store.listLayers() {
                rows.append([noTrunc ? l.chainID.description : l.chainID.short, noTrunc ? l.diffID.description : l.diffID.short,
                             humanSize(l.size), "\(l.images)"])
            }
        } else {
            rows = [["NAME", "IMAGE ID", "LAYERS", "SIZE"]]
            for i in try store.list() {
                rows.append([i.name ?? "<none>", noTrunc ? i.id.description : i.id.short, "\(i.layers)", humanSize(i.size)])
            }
        }
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max()! }
        let text = rows.map { r in
            r.enumerated().map { c, v in c == r.count - 1 ? v : v + String(repeating: " ", count: widths[c] + 2 - v.count) }.joined()
        }.joined(separator: "\n")
        try writeStdout(text + "\n")
    }
}

struct ImageRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove image names from the store (layers go with prune).")
    @OptionGroup var storeOption: StoreOption
    @Argument(help: "Image names or IDs.")
    var refs: [String]

    func validate() throws { if refs.isEmpty { throw ValidationError("missing REF") } }

    func run() throws {
        let store = try storeOption.open()
        for ref in refs {
            let r = try store.remove(ref)
            try writeStdout("Untagged: \(r.name ?? r.config.description)\n")
        }
    }
}

struct ImageMountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount an image (a name in the store, or an archive, loaded first) as a root filesystem.",
        discussion: "Read-only unless --writable with --upper (and --workdir, default UPPER.work beside it). Unmount with fusermount3 -u."
    )
    @OptionGroup var storeOption: StoreOption
    @Flag(help: "Mount writable: changes go to --upper.")
    var writable = false
    @Option(help: ArgumentHelp("The copy-on-write layer (with --writable).", valueName: "dir"))
    var upper: String?
    @Option(help: ArgumentHelp("Empty staging dir on the upper's filesystem.", valueName: "dir"))
    var workdir: String?
    @Option(name: .short, help: ArgumentHelp("More mount options, as for the mount command.", valueName: "options"))
    var o: [String] = []
    @Option(help: ArgumentHelp("Platform, when loading a multi-platform archive.", valueName: "os/arch[/variant]"))
    var platform: String?
    @Flag(name: .short, help: "Stay in the foreground.")
    var f = false
    @Flag(name: .short, help: "Debug: stay in the foreground and trace every request.")
    var d = false
    @Argument(help: "The image name or ID, or an archive path.")
    var image: String
    @Argument(help: "Where to mount it.")
    var mountpoint: String

    func validate() throws {
        if writable && upper == nil { throw ValidationError("--writable needs --upper DIR") }
        if !writable && (upper != nil || workdir != nil) { throw ValidationError("--upper and --workdir need --writable") }
    }

    func run() throws {
        let store = try storeOption.open()
        try MountPreflight.check(mountpoint: self.mountpoint)
        // Absolute, so that the unmount at the end finds it whatever the working directory.
        guard let resolved = realpath(mountpoint, nil) else {
            throw ConfigurationError("mountpoint '\(mountpoint)': \(String(cString: strerror(errno)))")
        }
        let mountpoint = String(cString: resolved)
        free(resolved)
        var ref = image
        if ImageStore.looksLikeArchive(image) {
            let records = try store.load(archive: image, platform: platform)
            ref = records[0].name ?? records[0].config.description
        }
        let (dirs, locks) = try store.lowerdirs(ref)
        // The lowers go in as a lowerdir= option so that -o is checked as the mount command does.
        let lowerdir = "lowerdir=" + dirs.map { d in d.map { $0 == ":" ? "\\:" : String($0) }.joined() }.joined(separator: ":")
        var options = try MountOptions.parse([lowerdir] + o)
        options.stack.lowerdirs = dirs
        options.stack.xattrNamespace = store.xattrNamespace
        // A store unpacked without root keeps owners and modes in user.containers.override_stat.
        if store.ociWhiteouts && options.fileSystem.xattrPermissions == 0 { options.fileSystem.xattrPermissions = 2 }
        if let upper {
            let work = workdir ?? (upper.hasSuffix("/") ? String(upper.dropLast()) : upper) + ".work"
            for dir in [upper, work] where !Sys.access(dir, F_OK) {
                do { try Sys.mkdir(dir, 0o755) } catch { throw UnionFSError.io(error, "cannot create '\(dir)': \(error)") }
            }
            options.stack.upperdir = upper
            options.stack.workdir = work
        } else {
            options.fileSystem.readOnly = true  // MountPlan mounts it `ro`
        }
        // The layer locks stay held (inherited by the daemon) until the mount ends.
        try withExtendedLifetime(locks) {
            try MountPreflight.serve(options, at: mountpoint, source: ref, foreground: f, debug: d, singleThread: false)
        }
    }
}

struct ImageCommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Make NEW_REF from an image and an upper dir of changes over it (one new layer).",
        discussion: "Prints the new image ID and the layer's diffID and digest. The same upper gives the same digests."
    )
    @OptionGroup var storeOption: StoreOption
    @Option(help: ArgumentHelp("The upper dir holding the changes.", valueName: "dir"))
    var upper: String
    @Option(help: ArgumentHelp("The image the upper was mounted over.", valueName: "ref"))
    var from: String
    @Option(help: "Compress the new layer: none, gzip or zstd.")
    var compress = Choice(LayerCompression.gzip)
    @Option(help: "A comment for the history entry.")
    var message: String?
    @Flag(help: "Print only the result, never progress.")
    var quiet = false
    @Argument(help: "The new image's name.")
    var newRef: String

    func run() throws {
        let store = try storeOption.open()
        let progress = StageProgress(enabled: !quiet)
        defer { progress.end() }
        let r = try store.commit(upper: upper, from: from, newRef: newRef, compression: compress.value,
                                 message: message, progress: progress.callback)
        progress.end()
        try writeStdout("image \(r.record.config)\nmanifest \(r.record.manifest)\ndiffID \(r.layer.diffID)\ndigest \(r.layer.digest)\nsize \(r.layer.size)\n")
    }
}

struct ImageSaveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "save", abstract: "Write an image as an archive (OCI layout tar or docker-archive).")
    @OptionGroup var storeOption: StoreOption
    @Option(help: "oci (a tar of an OCI layout) or docker-archive.")
    var format = Choice(ArchiveFormat.oci)
    @Flag(help: "Never show progress.")
    var quiet = false
    @Argument(help: "The image name or ID.")
    var ref: String
    @Argument(help: "The archive file to write.")
    var output: String

    func run() throws {
        let store = try storeOption.open()
        let progress = StageProgress(enabled: !quiet)
        defer { progress.end() }
        try store.save(ref, to: output, format: format.value, progress: progress.callback)
    }
}

struct ImageExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write an image's flattened root filesystem as one tar.")
    @OptionGroup var storeOption: StoreOption
    @Argument(help: "The image name or ID.")
    var ref: String
    @Argument(help: "The tar file to write.")
    var output: String

    func run() throws {
        let store = try storeOption.open()
        try store.export(ref, to: output)
    }
}

struct ImageImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Make a one-layer image from a root filesystem tar.")
    @OptionGroup var storeOption: StoreOption
    @Option(help: ArgumentHelp("The image's platform (default: this machine's).", valueName: "os/arch[/variant]"))
    var platform: String?
    @Argument(help: "The root filesystem tar (plain, gzip or zstd).")
    var tar: String
    @Argument(help: "The new image's name.")
    var ref: String

    func run() throws {
        let store = try storeOption.open()
        let r = try store.importRootfs(tar, as: ref, platform: platform)
        try writeStdout("\(r.config)\n")
    }
}

struct ImagePruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove layers and blobs no image uses (layers of live mounts stay).")
    @OptionGroup var storeOption: StoreOption

    func run() throws {
        let r = try storeOption.open().prune()
        try writeStdout("removed \(r.layers) layers, \(r.blobs) blobs, \(humanSize(r.bytes))\n")
    }
}

/// A one-line progress display for multi-stage image work, only on a terminal.
final class StageProgress {
    let enabled: Bool
    private var last: Int64 = 0
    private var stage = ""
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled && isatty(2) == 1 }

    var callback: ImageProgress? {
        guard enabled else { return nil }
        return { [self] stage, entries, bytes in
            let now = Int64(time(nil))
            guard now != last || stage != self.stage else { return }
            last = now
            self.stage = stage
            shown = true
            let line = "\r\u{1b}[K\(stage): \(entries) entries, \(bytes / 1_048_576) MiB"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
    }

    func end() {
        guard enabled, shown else { return }
        shown = false
        let clear = "\r\u{1b}[K"
        _ = clear.withCString { write(2, $0, strlen($0)) }
    }
}
