import Glibc
import SystemPackage

extension UnionFileSystem {
    /// Opens a file for writing: a regular file is copied up first (with `O_TRUNC`, without its
    /// data); FIFOs and devices are opened where they are, never copied up on open.
    func openForWrite(_ id: NodeID, flags: Int32) throws(Errno) -> Descriptor {
        let n = try node(id)
        let (entry, _) = try n.location()
        if entry.isDirectory { throw .isDirectory }
        if entry.isRegularFile {
            try copyUp(n, flags & O_TRUNC != 0 ? .truncated : .entry)
        }
        let keep = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_SYNC | O_DSYNC | O_DIRECT | O_NOATIME
        return try openOwn(n, flags: writebackFlags(flags & keep))
    }

    /// Open flags for the backing file: with the kernel's writeback cache, read-write and
    /// without `O_APPEND` (see `writebackCache`).
    @inline(__always)
    func writebackFlags(_ flags: Int32) -> Int32 {
        guard writebackCache.load(ordering: .relaxed), flags & O_ACCMODE != O_RDONLY else { return flags }
        return (flags & ~(O_ACCMODE | O_APPEND)) | O_RDWR
    }

    // The calls below act on a file the kernel opened: `fd` is its file handle (`fh`), the raw
    // number the bridge keeps for it (`Descriptor.take()` at open, `init(adopting:)` at
    // release), lent for the length of one call. This is the one place raw descriptors cross
    // into the core.

    /// `flush` (each `close` of a descriptor): closing a duplicate reports delayed write errors
    /// the way the filesystem below would.
    public func flush(_ fd: Int32) throws(Errno) {
        let d = try Sys.dup(fd)
        if Glibc.close(d) != 0 && errno != EINTR { throw Errno.current }
    }

    /// `fsync`.
    public func fsync(_ fd: Int32, dataOnly: Bool) throws(Errno) {
        if dataOnly { try Sys.fdatasync(fd) } else { try Sys.fsync(fd) }
    }

    /// `fsyncdir`: a directory's upper part, if it has one, is made durable.
    public func fsyncdir(_ id: NodeID) throws(Errno) {
        let layers = try node(id).directoryLayers()
        if stack.isWritable, layers[0].layer == 0 { try Sys.fsync(layers[0].dir.fd) }
    }

    /// `fallocate`.
    public func fallocate(_ fd: Int32, mode: Int32, offset: Int64, length: Int64) throws(Errno) {
        try Sys.fallocate(fd, mode, offset, length)
    }

    /// `copy_file_range` between two open files of the mount.
    public func copyFileRange(from fdIn: Int32, at offIn: Int64, to fdOut: Int32, at offOut: Int64,
                              count: Int) throws(Errno) -> Int {
        var i = offIn, o = offOut
        return try Sys.copyFileRange(fdIn, &i, fdOut, &o, count)
    }

    /// `lseek`, for `SEEK_DATA` and `SEEK_HOLE`.
    public func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        try Sys.lseek(fd, offset, whence)
    }

    /// `fstat` of an open regular file, which keeps working after its last name is gone
    /// (nlink 0); other nodes are answered as `getattr` without a file.
    public func getattr(_ id: NodeID, openFile fd: Int32) throws(Errno) -> stat {
        let n = try node(id)
        if n.isDirectory { return try getattr(id) }
        var st = try Sys.fstat(fd)
        st.st_ino = ino_t(stack.inodes.shown(id))
        return present(st, node: id)
    }
}
