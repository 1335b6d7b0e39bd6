import Glibc
import SystemPackage

/// How a file's attributes are shown through the mount: the one place where ID mapping,
/// squashing, `static_nlink` and the `xattr_permissions` override apply, so every reply
/// (lookup, getattr, setattr, create, readdirplus) shows the same thing.
extension UnionFileSystem {
    /// The name of the override xattr for `xattr_permissions` (nil when off).
    var overrideXattrName: [CChar]? {
        switch options.xattrPermissions {
        case 1: return Array("user.fuseoverlayfs.override_stat".utf8CString)
        case 2: return Array("user.containers.override_stat".utf8CString)
        default: return nil
        }
    }

    /// `st` as the mount shows it. `path` reaches the file itself (for the override xattr).
    func present(_ st: stat, at path: UnsafePointer<CChar>?) -> stat {
        var s = st
        if let name = overrideXattrName, let path, let o = readOverride(path, name) {
            s.st_uid = o.uid
            s.st_gid = o.gid
            s.st_mode = (s.st_mode & S_IFMT) | (o.mode & 0o7777)
        }
        options.idMapping.shown(&s)
        if options.staticDirectoryNlink && s.st_mode & S_IFMT == S_IFDIR { s.st_nlink = 1 }
        return s
    }

    /// `present` for a node's current entry, reaching it through `/proc/self/fd` only when an
    /// override xattr may apply.
    func present(_ st: stat, node id: NodeID) -> stat {
        guard overrideXattrName != nil else { return present(st, at: nil) }
        return (try? withXattrPath(id) { (p) throws(Errno) -> stat in present(st, at: p) }) ?? present(st, at: nil)
    }

    /// Parses "uid:gid:mode" (mode octal), the override format fuse-overlayfs writes.
    private func readOverride(_ path: UnsafePointer<CChar>, _ name: [CChar]) -> (uid: uid_t, gid: gid_t, mode: mode_t)? {
        var buf = [UInt8](repeating: 0, count: 64)
        let n = (try? Errno.lift { try buf.withUnsafeMutableBytes { b in
            try name.withUnsafeBufferPointer { nb in try Sys.pathGetxattr(path, nb.baseAddress!, b) }
        } }) ?? -1
        guard n > 0 else { return nil }
        return OwnerRecords.parse(buf[0..<n])
    }

    /// Writes the override xattr: owner and mode kept there instead of on the file.
    func writeOverride(path: UnsafePointer<CChar>, uid: uid_t, gid: gid_t, mode: mode_t) throws(Errno) {
        guard let name = overrideXattrName else { return }
        let value = Array("\(uid):\(gid):0\(String(mode & 0o7777, radix: 8))".utf8)
        try Errno.lift {
            try value.withUnsafeBytes { v in
                try name.withUnsafeBufferPointer { nb in try Sys.pathSetxattr(path, nb.baseAddress!, v, 0) }
            }
        }
    }

    /// The caller as stored on disk (reverse ID mapping).
    func diskOwner(_ c: Caller) -> Caller {
        Caller(uid: options.idMapping.diskUID(c.uid), gid: options.idMapping.diskGID(c.gid))
    }
}
