import Glibc
import SystemPackage

/// Acting on the very file a node stands for, not on whatever holds its name now.
///
/// A node remembers a name; between the kernel's request and the daemon's syscall another
/// request may rename, unlink (leaving a 0:0 whiteout) or replace that name by a FIFO, a device
/// or another file. Opening the name then could open a whiteout (ENXIO), block a worker on a
/// FIFO, open a device on the kernel's behalf, or truncate the wrong file (issue 13, defect 3).
///
/// So an upper file is first named with an `O_PATH | O_NOFOLLOW` descriptor (which opens
/// nothing: no device driver runs, no FIFO blocks), its type and identity are checked against
/// the node (`InodeNumbers.reported` of its dev/ino is the node's number), and only then is it
/// opened, through `/proc/self/fd`, which reopens that inode and cannot land on another. This is
/// stricter than an `O_NONBLOCK` probe cleared afterwards with `fcntl`: such a probe still runs
/// a device's open. A name that holds nothing is `ENOENT`; one that holds another object is
/// `ESTALE`, on which the kernel walks the path again and finds what is there now (open(2) and
/// truncate(2) retry once with `LOOKUP_REVAL`). A node that moved meanwhile is tried again.
///
/// Lower layers never change under the mount, so their files are opened by name directly.
/// An `O_PATH` descriptor of the very file a node stands for, checked against the node, and its
/// `fstat` (`UnionFileSystem.ownFile`).
struct OwnFile: ~Copyable {
    let descriptor: Descriptor
    let stat: stat
}

extension UnionFileSystem {
    /// An `O_PATH` descriptor of the file `n` stands for, with its `fstat`.
    func ownFile(_ n: Node) throws(Errno) -> OwnFile {
        if let held = n.state.withLock({ $0.unlinked }) {
            let fd = try Descriptor(adopting: Sys.dup(held.fd))
            let st = try fd.stat()
            return OwnFile(descriptor: fd, stat: st)
        }
        for _ in 0..<4 {
            let generation = n.state.withLock { $0.generation }
            let (entry, name) = try n.location()
            guard let name else { throw .isDirectory }
            let fd: Descriptor
            do {
                fd = try name.withFileName { (c) throws(Errno) in try entry.parentDir.openFile(c, O_PATH) }
            } catch .noSuchFileOrDirectory {
                if n.state.withLock({ $0.generation }) != generation { continue }
                throw .noSuchFileOrDirectory
            }
            let st = try fd.stat()
            if st.st_mode & S_IFMT == entry.fileType && n.isOwn(st) { return OwnFile(descriptor: fd, stat: st) }
            fd.close()
            if n.state.withLock({ $0.generation }) != generation { continue }
            throw .staleNFSFileHandle
        }
        throw .staleNFSFileHandle
    }

    /// Opens the regular file `n` stands for with `flags` (never creating, never following):
    /// by name in a lower layer, through a checked `O_PATH` descriptor in the upper.
    func openOwn(_ n: Node, flags: Int32) throws(Errno) -> Descriptor {
        let flags = flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)
        if !stack.isWritable || !n.isInUpper(stack), n.state.withLock({ $0.unlinked }) == nil {
            return try n.withTopEntry { (dir, name) throws(Errno) -> Descriptor in
                switch name {
                case .some(let name): return try dir.openFile(name, flags)
                case .none: throw .isDirectory
                }
            }
        }
        let own = try ownFile(n)
        switch own.stat.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw .isDirectory
        default: throw .staleNFSFileHandle  // the kernel opens FIFOs and devices itself
        }
        return try reopen(own.descriptor, flags)
    }

    /// Opens the file an `O_PATH` descriptor names, with `flags` (through `/proc/self/fd`,
    /// whose links lead to the inode itself).
    @inline(__always)
    func reopen(_ probe: borrowing Descriptor, _ flags: Int32) throws(Errno) -> Descriptor {
        try withProcFDPath(probe) { (p) throws(Errno) in try Descriptor.open(at: AT_FDCWD, p, flags) }
    }

    /// The target of the symlink an `O_PATH` descriptor names (a target is shorter than
    /// `PATH_MAX`, so one call reads it whole).
    func readlink(ofPathDescriptor fd: borrowing Descriptor) throws(Errno) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let raw = fd.rawValue
        let n = try Errno.lift { try buf.withUnsafeMutableBytes { b in try Sys.readlinkat(raw, "", b) } }
        return Array(buf.prefix(n))
    }
}
