import Glibc
import SystemPackage

/// Who asks: new entries belong to the caller, as if it had made them itself.
public struct Caller: Sendable {
    public let uid: uid_t
    public let gid: gid_t
    public init(uid: uid_t, gid: gid_t) { self.uid = uid; self.gid = gid }
}

/// A file `create` made and opened: its entry and the descriptor for the kernel's file handle.
public struct CreatedFile: ~Copyable {
    public let entry: NodeEntry
    public let descriptor: Descriptor

    /// The descriptor alone (for the file handle), the rest let go.
    public consuming func takeDescriptor() -> Descriptor { descriptor }
}

/// What to make in `create`-like operations.
enum NewEntry {
    case file(mode: mode_t, flags: Int32)
    case node(mode: mode_t, rdev: dev_t)
    case directory(mode: mode_t)
    /// The target as the caller gave it (a path, not a name: any bytes but NUL).
    case symlink(target: UnsafePointer<CChar>)
}

extension UnionFileSystem {
    /// `create`: makes and opens a regular file. Returns its entry and the open descriptor.
    public func create(parent: NodeID, name: borrowing FileName, mode: mode_t, flags: Int32,
                       caller: Caller) throws(Errno) -> CreatedFile {
        guard let fd = try make(.file(mode: mode, flags: flags), parent: parent, name: name, caller: caller) else {
            throw .ioError  // a file is always made open
        }
        return CreatedFile(entry: try lookup(parent: parent, name: name), descriptor: fd)
    }

    /// `mknod`: a FIFO, socket or device. `mknod c 0 0` (a whiteout) is refused with `EPERM`.
    public func mknod(parent: NodeID, name: borrowing FileName, mode: mode_t, rdev: dev_t,
                      caller: Caller) throws(Errno) -> NodeEntry {
        if mode & S_IFMT == S_IFCHR && rdev == 0 { throw .notPermitted }
        _ = try make(.node(mode: mode, rdev: rdev), parent: parent, name: name, caller: caller)
        return try lookup(parent: parent, name: name)
    }

    /// `mkdir`. In a merged parent (or over a whiteout) the new directory is opaque, built in the
    /// workdir and moved into place, so nothing of a lower directory of that name shows through.
    public func mkdir(parent: NodeID, name: borrowing FileName, mode: mode_t,
                      caller: Caller) throws(Errno) -> NodeEntry {
        _ = try make(.directory(mode: mode), parent: parent, name: name, caller: caller)
        return try lookup(parent: parent, name: name)
    }

    /// `symlink`.
    public func symlink(target: UnsafePointer<CChar>, parent: NodeID, name: borrowing FileName,
                        caller: Caller) throws(Errno) -> NodeEntry {
        _ = try make(.symlink(target: target), parent: parent, name: name, caller: caller)
        return try lookup(parent: parent, name: name)
    }

    /// `link`: a new name for an existing file. A lower file is copied up once first, and both
    /// names then share the upper inode (and the node, so the kernel sees one inode).
    public func link(_ id: NodeID, newParent: NodeID, newName: borrowing FileName) throws(Errno) -> NodeEntry {
        if isReadOnly { throw .readOnlyFileSystem }
        let source = try node(id)
        if source.isDirectory { throw .notPermitted }
        let p = try node(newParent)
        defer { p.listingChanged() }
        try checkStorable(newName)
        if (try? stack.resolve(newName, in: p.directoryLayers())) != nil { throw .fileExists }
        try copyUp(source)
        let upper = try upperDirectory(of: p)
        let (entry, sourceName) = try source.location()
        guard let sourceName else { throw .invalidArgument }
        let from = entry.parentDir
        switch upperEntry(newName, in: upper) {
        case .entry: throw .fileExists
        case .whiteout:
            try sourceName.withFileName { (s) throws(Errno) in
                try Staging.withTemporaryName { (t) throws(Errno) in
                    try Sys.linkat(from.fd, s.cString, stack.staging!.fd, t.cString, 0)
                    try replaceWhiteout(temp: t, name: newName, in: upper, isDirectory: false)
                }
            }
        case .absent:
            try sourceName.withFileName { (s) throws(Errno) in
                try Sys.linkat(from.fd, s.cString, upper.fd, newName.cString, 0)
            }
        }
        return try lookup(parent: newParent, name: newName)
    }

    /// Makes a new entry `name` in the directory `parent`. Where the upper holds a whiteout under
    /// that name, or a directory must be opaque, the entry is built in the workdir and renamed
    /// into place in one step; otherwise it is made in the upper directly.
    func make(_ what: NewEntry, parent: NodeID, name: borrowing FileName,
              caller shownCaller: Caller) throws(Errno) -> Descriptor? {
        if isReadOnly { throw .readOnlyFileSystem }
        let caller = diskOwner(shownCaller)
        let p = try node(parent)
        defer { p.listingChanged() }
        try checkStorable(name)
        if (try? stack.resolve(name, in: p.directoryLayers())) != nil { throw .fileExists }
        let upper = try upperDirectory(of: p)
        let parentStat = try upper.stat()
        let layers = try p.directoryLayers()
        // A new directory in a merged parent is opaque (the kernel does the same), so that a
        // lower directory of this name, now or later, never merges into it.
        var opaque = false
        if case .directory = what { opaque = layers.count > 1 }
        let gid = parentStat.st_mode & S_ISGID != 0 ? parentStat.st_gid : caller.gid
        let inherit: mode_t = parentStat.st_mode & S_ISGID != 0 ? S_ISGID : 0
        switch upperEntry(name, in: upper) {
        case .entry:
            throw .fileExists
        case .whiteout:
            return try build(what, caller: caller, gid: gid, setgid: inherit, opaque: opaque,
                             defaultACL: defaultACL(of: upper)) { (temp, isDir) throws(Errno) in
                try replaceWhiteout(temp: temp, name: name, in: upper, isDirectory: isDir)
            }
        case .absent where opaque:
            return try build(what, caller: caller, gid: gid, setgid: inherit, opaque: true,
                             defaultACL: defaultACL(of: upper)) { (temp, _) throws(Errno) in
                try Sys.renameat2(stack.staging!.fd, temp.cString, upper.fd, name.cString, Sys.renameNoReplace)
            }
        case .absent:
            return try makeEntry(what, in: upper, name: name, uid: caller.uid, gid: gid, setgid: inherit)
        }
    }

    /// Builds the entry in the staging directory, calls `land` to move it, cleans up on failure.
    /// `defaultACL`: the upper parent's default POSIX ACL, which an entry made there would
    /// inherit and one made in the workdir does not (`InheritedACL`).
    private func build(_ what: NewEntry, caller: Caller, gid: gid_t, setgid: mode_t, opaque: Bool,
                       defaultACL: [UInt8]?,
                       land: (borrowing FileName, Bool) throws(Errno) -> Void) throws(Errno) -> Descriptor? {
        let staging = stack.staging!
        return try Staging.withTemporaryName { (t) throws(Errno) -> Descriptor? in
            // On failure the new file's descriptor (if any) closes as it goes out of scope.
            do throws(Errno) {
                let fd = try makeEntry(what, in: staging, name: t, uid: caller.uid, gid: gid, setgid: setgid)
                if let defaultACL { try inheritACL(defaultACL, what, staged: t, in: staging) }
                if opaque {
                    try setOpaque(try staging.openChild(t))
                }
                var isDir = false
                if case .directory = what { isDir = true }
                try land(t, isDir)
                return fd
            } catch {
                try? Staging.removeTree(in: staging, t)
                throw error
            }
        }
    }

    /// The default POSIX ACL of an upper directory, nil without one (or with `noacl`).
    private func defaultACL(of dir: LayerDir) -> [UInt8]? {
        if options.noACL { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { (buffer) -> [UInt8]? in
            guard let n = try? Sys.fgetxattr(dir.fd, "system.posix_acl_default", buffer), n > 0 else { return nil }
            return Array(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Gives the staged entry `name` what it would have inherited from `defaultACL` had it been
    /// made in its upper directory: the mode the ACL allows, its access ACL, and for a
    /// directory the default ACL itself. Symlinks carry no ACLs.
    private func inheritACL(_ defaultACL: [UInt8], _ what: NewEntry, staged name: borrowing FileName,
                            in staging: LayerDir) throws(Errno) {
        let requested: mode_t
        switch what {
        case .file(let mode, _), .node(let mode, _), .directory(let mode): requested = mode
        case .symlink: return
        }
        guard let inherited = InheritedACL.inherit(defaultACL, mode: requested) else { return }
        let entry = try staging.openFile(name, O_PATH)
        try withProcFDPath(entry) { (path) throws(Errno) in
            let st = try Sys.fstatat(AT_FDCWD, path, 0)
            if Glibc.chmod(path, (st.st_mode & 0o7000) | inherited.mode) != 0 { throw Errno.current }
            if let access = inherited.access { try setACL(path, "system.posix_acl_access", access) }
            if case .directory = what { try setACL(path, "system.posix_acl_default", defaultACL) }
        }
    }

    private func setACL(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: [UInt8]) throws(Errno) {
        let result = value.withUnsafeBytes { (v) -> Result<Void, Errno> in
            Result { () throws(Errno) in try Sys.pathSetxattr(path, name, v, 0) }
        }
        try result.get()
    }

    /// Makes one entry owned by uid/gid; returns the descriptor for a file.
    private func makeEntry(_ what: NewEntry, in dir: LayerDir, name entryName: borrowing FileName,
                           uid: uid_t, gid: gid_t, setgid: mode_t) throws(Errno) -> Descriptor? {
        let name = entryName.cString
        switch what {
        case .file(let mode, let flags):
            let keep = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_SYNC | O_DSYNC | O_NOATIME
            let fd = try dir.openFile(entryName, writebackFlags(flags & keep) | O_CREAT | O_EXCL, mode & 0o7777)
            do throws(Errno) {
                try Sys.fchownat(dir.fd, name, uid, gid, AT_SYMLINK_NOFOLLOW)
                if mode & 0o7000 != 0 { try Sys.fchmod(fd.rawValue, mode & 0o7777) }  // chown cleared them
            } catch {
                fd.close()
                try? Sys.unlinkat(dir.fd, name, 0)
                throw error
            }
            return fd
        case .node(let mode, let rdev):
            try Sys.mknodat(dir.fd, name, mode, rdev)
            try Sys.fchownat(dir.fd, name, uid, gid, AT_SYMLINK_NOFOLLOW)
            if mode & 0o7000 != 0 { try Sys.fchmodat(dir.fd, name, mode & 0o7777) }
        case .directory(let mode):
            try Sys.mkdirat(dir.fd, name, mode & 0o7777)
            try Sys.fchownat(dir.fd, name, uid, gid, AT_SYMLINK_NOFOLLOW)
            if (mode | setgid) & 0o7000 != 0 { try Sys.fchmodat(dir.fd, name, (mode | setgid) & 0o7777) }
        case .symlink(let target):
            try Sys.symlinkat(target, dir.fd, name)
            try Sys.fchownat(dir.fd, name, uid, gid, AT_SYMLINK_NOFOLLOW)
        }
        return nil
    }

    /// Moves the staging entry `temp` over the whiteout `name` in `upper` in one step. A
    /// directory cannot be renamed over a non-directory, so it is exchanged with the whiteout,
    /// which then goes from the workdir.
    func replaceWhiteout(temp: borrowing FileName, name: borrowing FileName, in upper: LayerDir,
                         isDirectory: Bool) throws(Errno) {
        if stack.ociUpper { try ociLand(temp: temp, name: name, in: upper); return }
        let staging = stack.staging!
        if isDirectory {
            try Sys.renameat2(staging.fd, temp.cString, upper.fd, name.cString, Sys.renameExchange)
            try? Sys.unlinkat(staging.fd, temp.cString, 0)
        } else {
            try Sys.renameat2(staging.fd, temp.cString, upper.fd, name.cString, 0)
        }
    }
}
