import Glibc
import Synchronization
import SystemPackage

/// The workdir's staging area, where copy-ups, whiteouts and opaque directories are built under
/// temporary names before one `rename` lands them in the upper. A crash leaves junk only here,
/// and `prepare` clears that junk at mount.
package enum Staging {
    /// Creates (if needed) and opens `workdir/work`, removing everything a previous run left.
    static func prepare(in workdir: LayerDir) throws(Errno) -> LayerDir {
        do { try Sys.mkdirat(workdir.fd, "work", 0o700) } catch .fileExists {}
        let dir = try workdir.openChild("work")
        try removeContents(of: dir)
        return dir
    }

    /// Removes every entry below `dir`, never following a symlink.
    package static func removeContents(of dir: LayerDir) throws(Errno) {
        var names: [Name] = []
        try Sys.forEachEntry(in: dir.fd) { e in names.append(Name(bytes: e.name)) }
        for name in names {
            try name.withCString { (n) throws(Errno) in try removeTree(in: dir, n) }
        }
    }

    /// Removes `name` in `dir` and, if it is a directory, everything below it.
    package static func removeTree(in dir: LayerDir, _ name: UnsafePointer<CChar>) throws(Errno) {
        let st = try dir.stat(name)
        if st.st_mode & S_IFMT == S_IFDIR {
            let child = try dir.openChild(name)
            try removeContents(of: child)
            try Sys.unlinkat(dir.fd, name, AT_REMOVEDIR)
        } else {
            try Sys.unlinkat(dir.fd, name, 0)
        }
    }

    private static let counter = Atomic<UInt64>(0)

    /// A name unique within this process's staging directory: `#<pid>-<n>`.
    static func temporaryName() -> Name {
        let n = counter.add(1, ordering: .relaxed).newValue
        return try! Name("#\(getpid())-\(n)")
    }
}
