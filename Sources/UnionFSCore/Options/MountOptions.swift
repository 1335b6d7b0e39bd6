/// Everything a `-o` option string asks for, parsed and checked.
///
/// The syntax is fuse-overlayfs's (and the kernel's): comma-separated, `\,` and `\\` escape a
/// comma or backslash inside a value, and `lowerdir` is colon-separated top first with `\:`
/// escaping a colon. Every option is either understood here, passed on to libfuse (generic mount
/// options it handles itself), or an error that names it: nothing is silently ignored.
public struct MountOptions: Sendable, Equatable {
    public var stack = LayerStackConfiguration(lowerdirs: [])
    public var fileSystem = FileSystemOptions()
    /// Options handed to libfuse unchanged (`allow_other`, `nodev`, `fsname=…`, …).
    public var fuseOptions: [String] = []
    /// Worker threads for the request loop.
    public var threads: Int = 8
    /// `debug` given as an option: libfuse traces every request to stderr.
    public var debug = false
    /// `squash_to_root` was given (squash_to_uid/gid take precedence over it).
    var squashToRoot = false
    /// `lowerdir=` appeared at all (an empty value is still an error).
    var sawLowerdir = false

    public init() {}

    /// Generic mount options libfuse understands itself, without a value.
    static let fuseFlags: Set<String> = [
        "allow_other", "allow_root", "default_permissions", "auto_unmount",
        "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync", "dirsync",
        "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "diratime", "nodiratime", "lazytime", "nolazytime", "rw",
    ]
    /// Generic mount options libfuse understands itself, with a value.
    static let fuseValued: Set<String> = [
        "fsname", "subtype", "max_read", "blksize", "context", "fscontext", "defcontext",
        "rootcontext", "max_threads",
    ]
    /// fstab-only words mount(8) may leave in the string; they mean nothing to a mounted
    /// filesystem, so accepting them changes nothing.
    static let fstabOnly: Set<String> = ["defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail"]

    /// Parses one or more `-o` strings.
    public static func parse(_ strings: [String]) throws(ConfigurationError) -> MountOptions {
        var o = MountOptions()
        for s in strings {
            for option in try splitOptions(s) where !option.isEmpty {
                try o.apply(option)
            }
        }
        if !o.sawLowerdir { throw ConfigurationError("missing option: lowerdir=DIR[:DIR...]") }
        return o
    }

    private mutating func apply(_ option: String) throws(ConfigurationError) {
        let key: String, value: String?
        if let eq = option.firstIndex(of: "=") {
            key = String(option[..<eq]); value = String(option[option.index(after: eq)...])
        } else {
            key = option; value = nil
        }
        func required() throws(ConfigurationError) -> String {
            guard let value else { throw ConfigurationError("option '\(key)' needs a value (\(key)=...)") }
            return value
        }
        func noValue() throws(ConfigurationError) {
            if value != nil { throw ConfigurationError("option '\(key)' takes no value") }
        }
        switch key {
        case "lowerdir":
            let v = try required()
            sawLowerdir = true
            stack.lowerdirs = try Self.splitLowerdir(v)
            if stack.lowerdirs.isEmpty { throw ConfigurationError("lowerdir is empty: give at least one lower directory") }
        case "upperdir": stack.upperdir = try required()
        case "workdir": stack.workdir = try required()
        case "userxattr": try noValue(); stack.xattrNamespace = .user
        case "xattr_namespace":
            // Overrides the choice made from the process's privilege (see XattrNamespace.forThisProcess).
            switch try required() {
            case "trusted": stack.xattrNamespace = .trusted
            case "user": stack.xattrNamespace = .user
            case "auto": stack.xattrNamespace = nil
            default: throw ConfigurationError("option 'xattr_namespace' takes trusted, user or auto, got '\(value ?? "")'")
            }
        case "no_oci_whiteouts": try noValue(); stack.ociWhiteouts = false
        case "volatile": try noValue(); fileSystem.volatile = true
        case "fsync":
            // fuse-overlayfs's spelling, often in storage.conf's mountopt: fsync=0 is volatile.
            switch try required() {
            case "0": fileSystem.volatile = true
            case "1": fileSystem.volatile = false
            default: throw ConfigurationError("option 'fsync' takes 0 or 1, got '\(value ?? "")'")
            }
        case "writeback":
            // fuse-overlayfs's option: writeback=0 keeps the kernel's page cache write-through.
            switch try required() {
            case "0": fileSystem.writebackCache = false
            case "1": fileSystem.writebackCache = true
            default: throw ConfigurationError("option 'writeback' takes 0 or 1, got '\(value ?? "")'")
            }
        case "uidmapping": fileSystem.idMapping.uids = try IDMapping.parseRanges(try required(), option: key)
        case "gidmapping": fileSystem.idMapping.gids = try IDMapping.parseRanges(try required(), option: key)
        case "squash_to_root":
            try noValue()
            if fileSystem.idMapping.squashUID == nil { fileSystem.idMapping.squashUID = 0 }
            if fileSystem.idMapping.squashGID == nil { fileSystem.idMapping.squashGID = 0 }
            squashToRoot = true
        case "squash_to_uid", "squash_to_gid":
            guard let id = UInt32(try required()) else {
                throw ConfigurationError("option '\(key)' needs a numeric ID, got '\(value ?? "")'")
            }
            if key == "squash_to_uid" { fileSystem.idMapping.squashUID = id } else { fileSystem.idMapping.squashGID = id }
        case "static_nlink": try noValue(); fileSystem.staticDirectoryNlink = true
        case "noacl": try noValue(); fileSystem.noACL = true
        case "xattr_permissions":
            guard let v = Int(try required()), (0...2).contains(v) else {
                throw ConfigurationError("option 'xattr_permissions' takes 0, 1 or 2, got '\(value ?? "")'")
            }
            fileSystem.xattrPermissions = v
        case "private", "shared", "slave", "rprivate", "rshared", "rslave":
            // Mount propagation: containers/storage may pass it; it concerns the mount table,
            // which a FUSE daemon neither sees nor changes.
            try noValue()
        case "rename_exdev": try noValue(); fileSystem.renameDirectoriesEXDEV = true
        case "ro": try noValue(); fileSystem.readOnly = true; fuseOptions.append("ro")
        case "timeout":
            guard let t = Double(try required()), t >= 0, t <= 86400 * 365 else {
                throw ConfigurationError("option 'timeout' needs a number of seconds, got '\(value ?? "")'")
            }
            fileSystem.timeout = t
        case "threads":
            guard let n = Int(try required()), (1...256).contains(n) else {
                throw ConfigurationError("option 'threads' needs a number from 1 to 256, got '\(value ?? "")'")
            }
            threads = n
        case "debug": try noValue(); debug = true
        case _ where Self.fstabOnly.contains(key) && value == nil:
            break
        case _ where Self.fuseFlags.contains(key):
            try noValue(); fuseOptions.append(option)
        case _ where Self.fuseValued.contains(key):
            _ = try required(); fuseOptions.append(option)
        default:
            throw ConfigurationError("unknown option '\(option)'")
        }
    }

    /// Splits an option string at unescaped commas; `\,` and `\\` are unescaped, and any other
    /// backslash is kept for the per-option parser (lowerdir's `\:`).
    static func splitOptions(_ s: String) throws(ConfigurationError) -> [String] {
        var out: [String] = []
        var current = ""
        var it = s.makeIterator()
        var quoted = false
        while let c = it.next() {
            if c == "\\" {
                guard let n = it.next() else { throw ConfigurationError("option string ends with a lone backslash") }
                if n == "," || n == "\\" { current.append(n) } else { current.append("\\"); current.append(n) }
            } else if c == "\"" {
                // SELinux contexts arrive as context="user:role:type:level,c1,c2": commas inside
                // double quotes belong to the value.
                quoted.toggle()
                current.append(c)
            } else if c == "," && !quoted {
                out.append(current); current = ""
            } else {
                current.append(c)
            }
        }
        if quoted { throw ConfigurationError("option string has an unclosed double quote: '\(s)'") }
        out.append(current)
        return out
    }

    /// Splits a lowerdir value at unescaped colons (`\:` is a colon in a path).
    static func splitLowerdir(_ s: String) throws(ConfigurationError) -> [String] {
        var out: [String] = []
        var current = ""
        var it = s.makeIterator()
        while let c = it.next() {
            if c == "\\" {
                guard let n = it.next() else { throw ConfigurationError("lowerdir ends with a lone backslash") }
                current.append(n)
            } else if c == ":" {
                guard !current.isEmpty else { throw ConfigurationError("lowerdir has an empty entry: '\(s)'") }
                out.append(current); current = ""
            } else {
                current.append(c)
            }
        }
        guard !current.isEmpty || out.isEmpty else { throw ConfigurationError("lowerdir has an empty entry: '\(s)'") }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
