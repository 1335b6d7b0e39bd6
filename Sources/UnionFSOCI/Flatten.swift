import Glibc
import SystemPackage
import UnionFSCore

/// Moves an unpacked layer onto an existing tree (after its whiteouts were applied there).
enum Flatten {
    /// Moves every entry of `source` into `target`: a directory onto a directory merges (and
    /// then takes the layer's metadata), anything else replaces what the target had. Entries
    /// move by `rename`, so hard links between them stay links.
    static func merge(_ source: LayerDir, into target: LayerDir) throws(Errno) {
        var names: [Name] = []
        try Sys.forEachEntry(in: source.fd) { e in names.append(Name(bytes: e.name)) }
        for name in names {
            try name.withFileName { (n) throws(Errno) in
                let st = try source.stat(n)
                let old = try? target.stat(n)
                if st.st_mode & S_IFMT == S_IFDIR, let old, old.st_mode & S_IFMT == S_IFDIR {
                    let from = try source.openChild(n)
                    let to = try target.openChild(n)
                    try merge(from, into: to)
                    try copyMetadata(st, from: from, to: target, n)
                    return
                }
                if old != nil { try Staging.removeTree(in: target, n) }
                try Sys.renameat2(source.fd, n.cString, target.fd, n.cString, 0)
            }
        }
    }

    /// Refuses a layer whose entries would go through a symlink or file of the target: a
    /// directory the tar never named, only implied by a path below it, where the target has
    /// anything but a directory. Checked before the target is touched.
    static func checkImplicit(_ paths: Set<[Name]>, against target: LayerDir) throws(ConfigurationError) {
        for path in paths {
            var dir = target
            for (i, part) in path.enumerated() {
                let st: stat
                do { st = try part.withFileName { (n) throws(Errno) in try dir.stat(n) } } catch { break }
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    throw ConfigurationError("tar path '\(TarPath.display(Array(path[...i])))' is a symlink or a file in the target: refusing to write through it")
                }
                guard let next = try? part.withFileName({ (n) throws(Errno) in try dir.openChild(n) }) else { break }
                dir = next
            }
        }
    }

    /// Gives the target directory the layer directory's owner, mode, xattrs and mtime.
    private static func copyMetadata(_ st: stat, from dir: LayerDir, to parent: LayerDir,
                                     _ name: borrowing FileName) throws(Errno) {
        if Sys.geteuid() == 0 { try Sys.fchownat(parent.fd, name.cString, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
        try Sys.fchmodat(parent.fd, name.cString, st.st_mode & 0o7777)
        let xattrs = try EntryXattrs.all(of: dir) { !EntryXattrs.isPrivate($0) }
        if !xattrs.isEmpty {
            let to = try parent.openChild(name)
            try withProcFDPath(to.descriptor) { (p) throws(Errno) in
                for (x, v) in xattrs {
                    try Errno.lift { try v.withUnsafeBytes { b in try Sys.pathSetxattr(p, x, b, 0) } }
                }
            }
        }
        try Sys.utimensat(parent.fd, name.cString, (st.st_atim, st.st_mtim), AT_SYMLINK_NOFOLLOW)
    }
}
