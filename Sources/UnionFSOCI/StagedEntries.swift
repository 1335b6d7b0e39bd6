import Glibc
import SystemPackage
import UnionFSCore

/// Metadata applied to an entry after it is created (and, for directories, after their
/// children, whose creation would change the directory's mtime).
struct EntryMetadata {
    var mode: mode_t
    var uid: uid_t
    var gid: gid_t
    var mtime: timespec
    var xattrs: [(String, [UInt8])]
}

/// Creates tar entries inside a staging directory, one component at a time with `O_NOFOLLOW`:
/// an entry that would go through a symlink (or a file) is refused, so nothing a tar says can
/// write outside the staging directory.
struct StagedEntries {
    let root: LayerDir
    let isRoot: Bool
    /// The last parent opened, since tar entries come grouped by directory.
    private var cached: (path: [Name], dir: LayerDir)? = nil
    /// Directories made only because an entry below them needed a parent (no entry of their
    /// own in the tar). Flattening must not let them replace a symlink of the target: that
    /// would be the tar writing through the symlink.
    var implicitDirectories = Set<[Name]>()

    init(root: LayerDir, isRoot: Bool) {
        self.root = root
        self.isRoot = isRoot
    }

    /// Opens the directory at `parts`, creating missing directories (0755) when `create`.
    mutating func directory(_ parts: [Name], create: Bool) throws(ConfigurationError) -> LayerDir {
        if let c = cached, c.path == parts { return c.dir }
        var dir = root
        for (i, part) in parts.enumerated() {
            do {
                dir = try part.withFileName { (n) throws(Errno) -> LayerDir in
                    do throws(Errno) { return try dir.openChild(n) } catch .noSuchFileOrDirectory where create {
                        try Sys.mkdirat(dir.fd, n.cString, 0o755)
                        implicitDirectories.insert(Array(parts[...i]))
                        return try dir.openChild(n)
                    }
                }
            } catch .notDirectory, .tooManySymbolicLinkLevels {
                throw ConfigurationError("tar path '\(TarPath.display(Array(parts[...i])))' is a symlink or a file, not a directory: refusing to write through it")
            } catch {
                throw UnionFSError("'\(TarPath.display(Array(parts[...i])))'", wrapping: error)
            }
        }
        cached = (parts, dir)
        return dir
    }

    /// Removes whatever `name` in `dir` is, so a later tar entry replaces an earlier one; a
    /// directory is kept when the new entry is a directory too.
    mutating func clear(_ name: Name, in dir: LayerDir, keepDirectory: Bool) throws(Errno) {
        try name.withFileName { (n) throws(Errno) in
            guard let st = try? dir.stat(n) else { return }
            if keepDirectory && st.st_mode & S_IFMT == S_IFDIR { return }
            cached = nil  // it may have been (below) the removed entry
            try Staging.removeTree(in: dir, n)
        }
    }

    /// Sets owner (when root), mode, xattrs (except overlay ones) and times on `name` in `dir`,
    /// in the order that keeps them: chown clears set-id bits and capabilities, so it goes first.
    func setMetadata(_ m: EntryMetadata, _ name: Name, in dir: LayerDir, isSymlink: Bool) throws(Errno) {
        try name.withFileName { (n) throws(Errno) in
            if isRoot { try Sys.fchownat(dir.fd, n.cString, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) }
            if !isSymlink && !isRoot {
                try recordOwnership(m, n.cString, in: dir)
            } else if !isSymlink {
                try Sys.fchmodat(dir.fd, n.cString, m.mode & 0o7777)
            }
            if !m.xattrs.isEmpty {
                let fd = try dir.openFile(n, O_PATH)
                try withProcFDPath(fd) { (path) throws(Errno) in
                    for (x, value) in m.xattrs where !EntryXattrs.isPrivate(x) {
                        do throws(Errno) {
                            try Errno.lift { try value.withUnsafeBytes { v in try Sys.pathSetxattr(path, x, v, 0) } }
                        } catch .notSupported, .notPermitted where isSymlink {
                            continue  // user.* xattrs cannot exist on symlinks
                        }
                    }
                }
            }
            try Sys.utimensat(dir.fd, n.cString, (m.mtime, m.mtime), AT_SYMLINK_NOFOLLOW)
        }
    }

    /// Without root the owner cannot be set: it is kept, with the mode, in
    /// `user.containers.override_stat` ("uid:gid:0mode", the containers/storage convention, read
    /// by mounts with `xattr_permissions=2`), and the file itself gets the mode with the owner's
    /// read and write (and search, for a directory) added so that the user who unpacked it can
    /// still read it, and set its xattrs (user.* xattrs need write permission). Symlinks, FIFOs,
    /// sockets and devices cannot carry user.* xattrs and keep the unpacking user as owner.
    private func recordOwnership(_ m: EntryMetadata, _ n: UnsafePointer<CChar>, in dir: LayerDir) throws(Errno) {
        try recordOwnership(uid: m.uid, gid: m.gid, mode: m.mode, n, in: dir)
    }

    /// Without root, the owner root would have given the layer's root and the parents no tar
    /// entry named (root, 0755, as they are made for root), recorded as for an entry.
    func recordImplicitOwnership() throws(Errno) {
        guard !isRoot else { return }
        try recordOwnership(uid: 0, gid: 0, mode: 0o755, ".", in: root)
        for parts in implicitDirectories {
            var parent = root
            for p in parts.dropLast() { parent = try p.withFileName { (c) throws(Errno) in try parent.openChild(c) } }
            try parts.last!.withCString { (c) throws(Errno) in try recordOwnership(uid: 0, gid: 0, mode: 0o755, c, in: parent) }
        }
    }

    /// `n` is a name in `dir`, or "." for `dir` itself (the layer's root).
    private func recordOwnership(uid: uid_t, gid: gid_t, mode: mode_t, _ n: UnsafePointer<CChar>, in dir: LayerDir) throws(Errno) {
        let type = (try Sys.fstatat(dir.fd, n)).st_mode & S_IFMT
        try Sys.fchmodat(dir.fd, n, (mode & 0o7777) | (type == S_IFDIR ? 0o700 : 0o600))
        // The kernel allows user.* xattrs on regular files and directories only.
        guard type == S_IFREG || type == S_IFDIR else { return }
        let value = Array("\(uid):\(gid):0\(String(mode & 0o7777, radix: 8))".utf8)
        let fd = try Descriptor.open(at: dir.fd, n, O_PATH | O_NOFOLLOW)
        try withProcFDPath(fd) { (path) throws(Errno) in
            try Errno.lift { try value.withUnsafeBytes { v in try Sys.pathSetxattr(path, "user.containers.override_stat", v, 0) } }
        }
    }
}
