/// One `-o` option: every spelling the parser accepts, what it does, and the help text shown
/// for it. The parser (`MountOptions.parse`) and the command line's help (`MountOptions.help`)
/// both read `MountOptions.table`, so an option cannot be parsed without being documented, or
/// documented without being parsed.
struct MountOptionSpec: Sendable {
    /// The keys (the part before `=`) this entry handles.
    let keys: [String]
    /// The left column of the help: the option as written.
    let usage: String
    /// The right column of the help, one line each.
    let help: [String]
    let apply: @Sendable (inout MountOptions, OptionArgument) throws(ConfigurationError) -> Void

    init(_ keys: [String], _ usage: String, _ help: [String],
         _ apply: @escaping @Sendable (inout MountOptions, OptionArgument) throws(ConfigurationError) -> Void) {
        self.keys = keys; self.usage = usage; self.help = help; self.apply = apply
    }
}

/// One option as written, split at its first `=`.
struct OptionArgument {
    let option: String
    let key: String
    let value: String?

    init(_ option: String) {
        self.option = option
        if let eq = option.firstIndex(of: "=") {
            key = String(option[..<eq]); value = String(option[option.index(after: eq)...])
        } else {
            key = option; value = nil
        }
    }

    func required() throws(ConfigurationError) -> String {
        guard let value else { throw ConfigurationError("option '\(key)' needs a value (\(key)=...)") }
        return value
    }

    func noValue() throws(ConfigurationError) {
        if value != nil { throw ConfigurationError("option '\(key)' takes no value") }
    }

    /// One of `choices` (for `0|1` style options), else an error listing them.
    func choice(_ choices: [String], _ wording: String) throws(ConfigurationError) -> String {
        let v = try required()
        guard choices.contains(v) else { throw ConfigurationError("option '\(key)' takes \(wording), got '\(v)'") }
        return v
    }
}

extension MountOptions {
    /// Every option this program understands itself, in the order the help lists them.
    static let table: [MountOptionSpec] = [
        .init(["lowerdir"], "lowerdir=A[:B...]", ["lower layers, top first ('\\:' is a colon in a path)"]) { o, a throws(ConfigurationError) in
            let v = try a.required()
            o.sawLowerdir = true
            o.stack.lowerdirs = try MountOptions.splitLowerdir(v)
            if o.stack.lowerdirs.isEmpty { throw ConfigurationError("lowerdir is empty: give at least one lower directory") }
        },
        .init(["upperdir"], "upperdir=DIR", ["copy-on-write layer (needs workdir); else read-only"]) { o, a throws(ConfigurationError) in
            o.stack.upperdir = try a.required()
        },
        .init(["workdir"], "workdir=DIR", ["empty staging dir on the upper's filesystem"]) { o, a throws(ConfigurationError) in
            o.stack.workdir = try a.required()
        },
        .init(["xattr_namespace"], "xattr_namespace=trusted|user|auto",
              ["where whiteout/opaque xattrs are", "written: auto (default) picks trusted.overlay.* with",
               "CAP_SYS_ADMIN in the initial user namespace, else", "user.overlay.* (rootless); lowers are read in both"]) { o, a throws(ConfigurationError) in
            // Overrides the choice made from the process's privilege (see XattrNamespace.forThisProcess).
            switch try a.choice(["trusted", "user", "auto"], "trusted, user or auto") {
            case "trusted": o.stack.xattrNamespace = .trusted
            case "user": o.stack.xattrNamespace = .user
            default: o.stack.xattrNamespace = nil
            }
        },
        .init(["userxattr"], "userxattr", ["the kernel's spelling of xattr_namespace=user"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.stack.xattrNamespace = .user
        },
        .init(["no_oci_whiteouts"], "no_oci_whiteouts", ["ignore .wh.NAME/.wh..wh..opq in lowers (as the kernel)"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.stack.ociWhiteouts = false
        },
        .init(["whiteout"], "whiteout=auto|chardev|oci",
              ["how the upper records deletions: 0:0 char", "devices and the opaque xattr (the kernel's form), or",
               ".wh.NAME and .wh..wh..opq files (OCI form, read back", "the same; the kernel cannot mount such an upper);",
               "auto (default) tries mknod in the workdir"]) { o, a throws(ConfigurationError) in
            // Overrides the choice made by trying mknod in the workdir (see WhiteoutForm.detect).
            switch try a.choice(["auto", "chardev", "oci"], "auto, chardev or oci") {
            case "chardev": o.stack.whiteoutForm = .chardev
            case "oci": o.stack.whiteoutForm = .oci
            default: o.stack.whiteoutForm = nil
            }
        },
        .init(["ro"], "ro", ["refuse every change, even with an upperdir"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.fileSystem.readOnly = true  // MountPlan mounts it `ro`
        },
        .init(["volatile"], "volatile", ["no fsync of copied-up data (a host crash may lose it)"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.fileSystem.volatile = true
        },
        .init(["fsync"], "fsync=0|1", ["fuse-overlayfs's form: fsync=0 is volatile"]) { o, a throws(ConfigurationError) in
            // fuse-overlayfs's spelling, often in storage.conf's mountopt.
            o.fileSystem.volatile = try a.choice(["0", "1"], "0 or 1") == "0"
        },
        .init(["writeback"], "writeback=0|1", ["the kernel's writeback cache (0): with 1, data reaches",
                                                "the upper dir at close/fsync, not at each write"]) { o, a throws(ConfigurationError) in
            // fuse-overlayfs's option: writeback=0 keeps the kernel's page cache write-through.
            o.fileSystem.writebackCache = try a.choice(["0", "1"], "0 or 1") == "1"
        },
        .init(["readdirplus"], "readdirplus=always|auto", ["attributes in every listing chunk (always),",
                                                            "or as the kernel chooses (auto)"]) { o, a throws(ConfigurationError) in
            o.fileSystem.readdirplusAuto = try a.choice(["always", "auto"], "always or auto") == "auto"
        },
        .init(["passthrough"], "passthrough=auto|on|off", ["file data straight from the kernel to the layer's file",
                                                            "(Linux 6.9+, root; auto: where the kernel allows it)"]) { o, a throws(ConfigurationError) in
            o.fileSystem.passthrough = FeatureChoice(rawValue: try a.choice(["auto", "on", "off"], "auto, on or off"))!
        },
        .init(["readahead"], "readahead=KIB", ["kernel readahead for reads through the daemon",
                                                "(root; default: the kernel's 128)"]) { o, a throws(ConfigurationError) in
            guard let kib = Int(try a.required()), (0...65536).contains(kib) else {
                throw ConfigurationError("option 'readahead' needs a size in KiB from 0 to 65536, got '\(a.value ?? "")'")
            }
            o.fileSystem.readaheadKiB = kib
        },
        .init(["rename_exdev"], "rename_exdev", ["EXDEV for renaming a dir with lower content, as the",
                                                  "kernel does (default: copy the subtree up and move it)"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.fileSystem.renameDirectoriesEXDEV = true
        },
        .init(["timeout"], "timeout=SECONDS", ["kernel cache time for entries/attributes (86400)"]) { o, a throws(ConfigurationError) in
            guard let t = Double(try a.required()), t >= 0, t <= 86400 * 365 else {
                throw ConfigurationError("option 'timeout' needs a number of seconds, got '\(a.value ?? "")'")
            }
            o.fileSystem.timeout = t
        },
        .init(["threads"], "threads=N", ["request worker threads (8)"]) { o, a throws(ConfigurationError) in
            guard let n = Int(try a.required()), (1...256).contains(n) else {
                throw ConfigurationError("option 'threads' needs a number from 1 to 256, got '\(a.value ?? "")'")
            }
            o.threads = n
        },
        .init(["uidmapping"], "uidmapping=D:S:N[:D:S:N...]", ["show disk uid D.. as S.. (N ids), store back"]) { o, a throws(ConfigurationError) in
            o.fileSystem.idMapping.uids = try IDMapping.parseRanges(try a.required(), option: a.key)
        },
        .init(["gidmapping"], "gidmapping=D:S:N[:D:S:N...]", ["the same for gids; unmapped ids show as 65534"]) { o, a throws(ConfigurationError) in
            o.fileSystem.idMapping.gids = try IDMapping.parseRanges(try a.required(), option: a.key)
        },
        .init(["squash_to_uid", "squash_to_gid"], "squash_to_uid=N", ["show every file as owned by uid N (also squash_to_gid=N)"]) { o, a throws(ConfigurationError) in
            guard let id = UInt32(try a.required()) else {
                throw ConfigurationError("option '\(a.key)' needs a numeric ID, got '\(a.value ?? "")'")
            }
            if a.key == "squash_to_uid" { o.fileSystem.idMapping.squashUID = id } else { o.fileSystem.idMapping.squashGID = id }
        },
        .init(["squash_to_root"], "squash_to_root", ["show every file as owned by 0:0"]) { o, a throws(ConfigurationError) in
            try a.noValue()
            if o.fileSystem.idMapping.squashUID == nil { o.fileSystem.idMapping.squashUID = 0 }
            if o.fileSystem.idMapping.squashGID == nil { o.fileSystem.idMapping.squashGID = 0 }
            o.squashToRoot = true
        },
        .init(["static_nlink"], "static_nlink", ["report nlink 1 for every directory"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.fileSystem.staticDirectoryNlink = true
        },
        .init(["uring"], "uring=auto|on|off", ["FUSE over io_uring (Linux 6.14+): auto (default) when",
                                                "the fuse module's enable_uring is on, else /dev/fuse"]) { o, a throws(ConfigurationError) in
            o.fileSystem.uring = FeatureChoice(rawValue: try a.choice(["auto", "on", "off"], "auto, on or off")) ?? .auto
        },
        .init(["uring_idle"], "uring_idle=auto|off", ["io_uring workers wait at SCHED_IDLE, so a reply",
                                                       "wakes its caller on the same CPU (auto: as root;",
                                                       "back to normal while a request would starve)"]) { o, a throws(ConfigurationError) in
            o.fileSystem.uringIdle = try a.choice(["auto", "off"], "auto or off") == "auto"
        },
        .init(["noacl"], "noacl", ["refuse POSIX ACL xattrs; permission checks use the",
                                     "mode bits alone"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.fileSystem.noACL = true
        },
        .init(["xattr_permissions"], "xattr_permissions=0|1|2", ["keep owner/mode in user.fuseoverlayfs. (1) or",
                                                                  "user.containers.override_stat (2) xattrs (rootless)"]) { o, a throws(ConfigurationError) in
            guard let v = Int(try a.required()), (0...2).contains(v) else {
                throw ConfigurationError("option 'xattr_permissions' takes 0, 1 or 2, got '\(a.value ?? "")'")
            }
            o.fileSystem.xattrPermissions = v
        },
        .init(["private", "shared", "slave", "rprivate", "rshared", "rslave"], "private, shared, slave",
              ["mount propagation words (also rprivate, rshared,", "rslave); no effect on the mount"]) { _, a throws(ConfigurationError) in
            // containers/storage may pass them; they concern the mount table, which a FUSE
            // daemon neither sees nor changes.
            try a.noValue()
        },
        .init(["context", "fscontext", "defcontext", "rootcontext"], "context=\"...\"",
              ["SELinux label for every file (also fscontext=,", "defcontext=, rootcontext=); ignored without SELinux"]) { o, a throws(ConfigurationError) in
            _ = try a.required(); o.fuseOptions.append(a.option)
        },
        .init(["debug"], "debug", ["trace every FUSE request (as -d)"]) { o, a throws(ConfigurationError) in
            try a.noValue(); o.debug = true
        },
    ]

    /// The table by key.
    static let tableByKey: [String: MountOptionSpec] = {
        var d: [String: MountOptionSpec] = [:]
        for spec in table { for k in spec.keys { d[k] = spec } }
        return d
    }()

    /// Every key the parser accepts: the table's, libfuse's and the fstab-only words.
    public static var knownKeys: [String] {
        table.flatMap(\.keys) + fuseFlags.sorted() + fuseValued.sorted() + fstabOnly.sorted()
    }

    /// Whether `key` (an option's part before `=`) is understood: by the table, passed on to
    /// libfuse, or an fstab-only word.
    public static func isKnown(_ key: String) -> Bool {
        tableByKey[key] != nil || fuseFlags.contains(key) || fuseValued.contains(key) || fstabOnly.contains(key)
    }

    /// The options part of the command line's help, rendered from `table` and the sets of
    /// options passed on to libfuse.
    public static var help: String {
        var lines = ["Options (-o, comma-separated, repeatable):"]
        let column = 21
        for spec in table {
            var first = "  " + spec.usage
            first += first.count + 2 <= column ? String(repeating: " ", count: column - first.count) : "  "
            lines.append(first + spec.help[0])
            for more in spec.help.dropFirst() { lines.append(String(repeating: " ", count: column) + more) }
        }
        let generic = fuseFlags.sorted() + fuseValued.sorted().map { $0 + "=" }
        lines.append("  Generic options go to libfuse unchanged:")
        lines += wrap(generic, indent: 4)
        lines.append("  Words of fstab, accepted and meaning nothing to a mounted filesystem:")
        lines += wrap(fstabOnly.sorted(), indent: 4)
        lines.append("  Anything else is an error that names the option.")
        return lines.joined(separator: "\n")
    }

    /// `words` comma-separated in lines of at most 76 columns.
    private static func wrap(_ words: [String], indent: Int) -> [String] {
        var lines: [String] = [], line = ""
        for (i, w) in words.enumerated() {
            let piece = w + (i == words.count - 1 ? "" : ",")
            if !line.isEmpty && indent + line.count + 1 + piece.count > 76 {
                lines.append(String(repeating: " ", count: indent) + line); line = ""
            }
            line += (line.isEmpty ? "" : " ") + piece
        }
        if !line.isEmpty { lines.append(String(repeating: " ", count: indent) + line) }
        return lines
    }
}
