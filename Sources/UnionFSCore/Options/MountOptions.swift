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
    static let fuseValued: Set<String> = ["fsname", "subtype", "max_read", "blksize", "max_threads"]
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

    /// One option: by `table` when it is ours, else passed on to libfuse or accepted as an
    /// fstab-only word, else an error naming it.
    private mutating func apply(_ option: String) throws(ConfigurationError) {
        let a = OptionArgument(option)
        if let spec = Self.tableByKey[a.key] {
            try spec.apply(&self, a)
        } else if Self.fstabOnly.contains(a.key) && a.value == nil {
            return
        } else if Self.fuseFlags.contains(a.key) {
            try a.noValue(); fuseOptions.append(option)
        } else if Self.fuseValued.contains(a.key) {
            _ = try a.required(); fuseOptions.append(option)
        } else {
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
