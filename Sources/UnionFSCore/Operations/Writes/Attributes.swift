import Glibc
import SystemPackage

/// What a `setattr` changes; nil leaves a field alone. A time whose `tv_nsec` is `UTIME_NOW`
/// means "now".
public struct AttributeChanges: Sendable {
    public var mode: mode_t?
    public var uid: uid_t?
    public var gid: gid_t?
    public var size: Int64?
    public var atime: timespec?
    public var mtime: timespec?
    public init() {}
}

extension UnionFileSystem {
    /// `setattr`: chmod, chown, truncate, utimens. Copies the file up first (truncation to zero
    /// copies no data). `fd` is the caller's open file (its FUSE file handle, lent for this call),
    /// when the change came through one.
    public func setattr(_ id: NodeID, _ c: AttributeChanges, fd: Int32?) throws(Errno) -> stat {
        if isReadOnly { throw .readOnlyFileSystem }
        let n = try node(id)
        var c = c
        c.uid = c.uid.map(options.idMapping.diskUID)
        c.gid = c.gid.map(options.idMapping.diskGID)
        try copyUp(n, c.size == 0 ? .truncated : .entry)
        if overrideXattrName != nil && (c.uid != nil || c.gid != nil) && c.mode == nil {
            // A chown clears setuid and setgid; here the file's own chown does not see them.
            c.mode = Self.modeWithoutSetID(try getattr(id), callerInGroup: { _ in true })
        }
        if overrideXattrName != nil && (c.uid != nil || c.gid != nil || c.mode != nil) {
            // Rootless: owner and mode live in the override xattr, not on the file.
            let current = try getattr(id)
            try withXattrPath(id) { (p) throws(Errno) in
                try writeOverride(path: p, uid: c.uid ?? options.idMapping.diskUID(current.st_uid),
                                  gid: c.gid ?? options.idMapping.diskGID(current.st_gid),
                                  mode: c.mode ?? current.st_mode)
            }
            c.uid = nil; c.gid = nil; c.mode = nil
        }
        let (entry, name) = try n.location()
        if let dir = entry.layers.first?.dir {
            if let mode = c.mode { try Sys.fchmod(dir.fd, mode & 0o7777) }
            if c.uid != nil || c.gid != nil {
                try Sys.fchownat(dir.fd, "", c.uid ?? uid_t.max, c.gid ?? gid_t.max, AT_EMPTY_PATH)
            }
            if c.atime != nil || c.mtime != nil { try Sys.futimens(dir.fd, times(c)) }
        } else {
            guard let name else { throw .noSuchFileOrDirectory }
            // Every change goes to the node's own file through a checked `O_PATH` descriptor
            // (`ownFile`), never to what another request put at its name meanwhile.
            let own = try ownFile(n)
            let st = own.stat
            try name.withFileName { (f) throws(Errno) in
                let parent = entry.parentDir
                if c.uid != nil || c.gid != nil {
                    try Sys.fchownat(own.descriptor.rawValue, "", c.uid ?? uid_t.max, c.gid ?? gid_t.max, AT_EMPTY_PATH)
                }
                if let mode = c.mode {
                    if st.st_mode & S_IFMT == S_IFLNK {
                        try Sys.fchmodat(parent.fd, f.cString, mode & 0o7777)  // refused for a symlink
                    } else {
                        // chmod(2) of the /proc link changes the inode it leads to, opening nothing.
                        try withProcFDPath(own.descriptor) { (p) throws(Errno) in
                            if Glibc.chmod(p, mode & 0o7777) != 0 { throw Errno.current }
                        }
                    }
                }
                if let size = c.size {
                    if let fd, (try? Sys.ftruncate(fd, size)) != nil {
                    } else {
                        // The node's own file, never what another request put at its name.
                        let file = try openOwn(n, flags: O_WRONLY | O_NONBLOCK)
                        try Sys.ftruncate(file.rawValue, size)
                    }
                }
                if c.atime != nil || c.mtime != nil {
                    try Sys.utimensat(own.descriptor.rawValue, "", times(c), AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                }
            }
        }
        return try getattr(id)
    }

    private func times(_ c: AttributeChanges) -> (timespec, timespec) {
        let omit = timespec(tv_sec: 0, tv_nsec: UTIME_OMIT)
        return (c.atime ?? omit, c.mtime ?? omit)
    }

    /// `setxattr`. `<ns>.overlay.X` is stored escaped, as `<ns>.overlay.overlay.X`, as the
    /// kernel stores it; the other namespace's markers are refused (`OverlayXattrs`).
    ///
    /// `clearingSetGID`: the kernel says the caller setting a POSIX ACL is neither in the
    /// file's group nor privileged (`FUSE_SETXATTR_ACL_KILL_SGID`), so the setgid bit goes, as
    /// the kernel's own `posix_acl_update_mode` does; the upper filesystem would keep it, since
    /// the daemon that writes the ACL is privileged.
    public func setxattr(_ id: NodeID, name: UnsafePointer<CChar>, value: UnsafeRawBufferPointer,
                         flags: Int32, clearingSetGID: Bool = false) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        // Refused before anything is copied up.
        try stack.overlayXattrs.withStoredName(name, forWriting: true) { (_) throws(Errno) in }
        let n = try node(id)
        try copyUp(n)
        // After the write (or a failure part way): a read that ran meanwhile then finds the
        // counter moved and records nothing, and one that recorded before is cleared here.
        defer {
            n.state.withLock { s in
                s.flags.subtract([.hasNoXattrs, .noDefaultACL])
                s.xattrChanges &+= 1
            }
        }
        try withXattrPath(id) { (path) throws(Errno) in
            try stack.overlayXattrs.withStoredName(name, forWriting: true) { (stored) throws(Errno) in
                try Sys.pathSetxattr(path, stored, value, flags)
            }
            if clearingSetGID {
                // chmod(2) of the /proc link changes the inode it leads to (never a symlink:
                // those carry no ACLs).
                let st = try Sys.fstatat(AT_FDCWD, path, 0)
                if st.st_mode & S_ISGID != 0, Glibc.chmod(path, st.st_mode & 0o7777 & ~S_ISGID) != 0 { throw Errno.current }
            }
        }
    }

    /// `removexattr`, of the stored name as `setxattr` writes it.
    public func removexattr(_ id: NodeID, name: UnsafePointer<CChar>) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        // Nothing to copy up for an xattr that does not exist.
        _ = try getxattr(id, name: name, size: 0)
        try copyUp(try node(id))
        try withXattrPath(id) { (path) throws(Errno) in
            try stack.overlayXattrs.withStoredName(name, forWriting: false) { (stored) throws(Errno) in
                try Sys.pathRemovexattr(path, stored)
            }
        }
    }
}
