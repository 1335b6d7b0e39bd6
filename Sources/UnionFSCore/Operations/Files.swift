import Glibc
import SystemPackage

extension UnionFileSystem {
    /// Opens a regular file for reading; the descriptor is the handle. Changes are refused here
    /// while the stack has no writable upper.
    public func open(_ id: NodeID, flags: Int32) throws(Errno) -> Int32 {
        try openHandle(id, flags: flags).fd
    }

    /// `open`, also telling whether a lower file was opened read-only on a writable mount: its
    /// reader must move to the upper copy once the file is copied up (`copiedUpReader`).
    public func openHandle(_ id: NodeID, flags: Int32) throws(Errno) -> (fd: Int32, lower: Bool) {
        let accessMode = flags & O_ACCMODE
        let wantsWrite = accessMode != O_RDONLY || flags & O_TRUNC != 0
        if wantsWrite && isReadOnly { throw .readOnlyFileSystem }
        if wantsWrite { return (try openForWrite(id, flags: flags), false) }
        let n = try node(id)
        let lower = !isReadOnly && !n.isInUpper(stack)
        // Keep the caller's O_NONBLOCK/O_DIRECT/O_NOATIME; never create, never follow.
        let keep = O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC
        return (try openOwn(n, flags: O_RDONLY | (flags & keep)), lower)
    }

    /// For a handle opened on the lower file of node `id`: once the node was copied up, a
    /// read-only descriptor of the upper copy (one per node, kept until the kernel forgets it),
    /// so readers that opened the file before see what is written after, as with kernel
    /// overlayfs. nil while the file is still only in a lower layer.
    package func copiedUpReader(_ id: NodeID) -> OwnedDescriptor? {
        guard let n = nodes.get(id), n.isInUpper(stack) else { return nil }
        if let held = n.state.withLock({ $0.upperReader }) { return held }
        guard let fd = try? openOwn(n, flags: O_RDONLY) else { return nil }
        let made = OwnedDescriptor(fd)
        return n.state.withLock { s in
            if let held = s.upperReader { return held }
            s.upperReader = made
            return made
        }
    }

    /// Closes a file handle.
    public func release(_ fd: Int32) {
        Sys.close(fd)
    }
}
