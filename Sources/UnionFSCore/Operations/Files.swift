import Glibc
import SystemPackage

/// A file opened for the kernel: its descriptor, and whether it was a lower file opened
/// read-only on a writable mount, whose reader must move to the upper copy once the file is
/// copied up (`copiedUpReader`).
public struct OpenedFile: ~Copyable {
    public let descriptor: Descriptor
    public let inLowerLayer: Bool

    /// The descriptor alone (for the file handle), the rest let go.
    public consuming func takeDescriptor() -> Descriptor { descriptor }
}

extension UnionFileSystem {
    /// Runs `store`, which hands the node's lower file to the kernel's page cache, unless the
    /// node is in the upper of a writable stack by now or `store` already ran for it to its
    /// end; `store` says whether it did (true also when the file is not one to store: lower
    /// files never change, so that answer holds too). On a read-only mount no file changes,
    /// upper or lower.
    ///
    /// Under the node's copy-up lock: a copy-up, and a write after it, cannot come between
    /// reading the lower file and the kernel caching what was read, so the kernel never caches
    /// data older than a write. Once is enough while the kernel holds the node (pages it drops
    /// later it reads again itself); later opens cost one look at the node's flags.
    package func storingLowerData(_ id: NodeID, _ store: () -> Bool) {
        guard let n = try? node(id), !n.isDirectory,
              !n.state.withLock({ $0.flags.contains(.lowerDataStored) }) else { return }
        n.copyUpLock.withLock { _ in
            let go = n.state.withLock { s in
                (isReadOnly || s.topLayer != 0) && !s.flags.contains(.lowerDataStored)
            }
            if go && store() { n.state.withLock { _ = $0.flags.insert(.lowerDataStored) } }
        }
    }

    /// False once `storingLowerData` is done with the node `id` (or no such node is held):
    /// a look at its flags, for a caller that would open the file to store it.
    package func mayStoreLowerData(_ id: NodeID) -> Bool {
        guard let n = nodes.get(id), !n.isDirectory else { return false }
        return !n.state.withLock { $0.flags.contains(.lowerDataStored) }
    }

    /// Opens a regular file; the descriptor becomes the kernel's file handle. Changes are
    /// refused here while the stack has no writable upper.
    public func open(_ id: NodeID, flags: Int32) throws(Errno) -> Descriptor {
        let opened = try openHandle(id, flags: flags)
        return opened.descriptor
    }

    /// `open`, also telling whether a lower file was opened read-only on a writable mount.
    public func openHandle(_ id: NodeID, flags: Int32) throws(Errno) -> OpenedFile {
        let accessMode = flags & O_ACCMODE
        let wantsWrite = accessMode != O_RDONLY || flags & O_TRUNC != 0
        if wantsWrite && isReadOnly { throw .readOnlyFileSystem }
        if wantsWrite { return OpenedFile(descriptor: try openForWrite(id, flags: flags), inLowerLayer: false) }
        let n = try node(id)
        let lower = !isReadOnly && !n.isInUpper(stack)
        // Keep the caller's O_NONBLOCK/O_DIRECT/O_NOATIME; never create, never follow.
        let keep = O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC
        return OpenedFile(descriptor: try openOwn(n, flags: O_RDONLY | (flags & keep)), inLowerLayer: lower)
    }

    /// For a handle opened on the lower file of node `id`: once the node was copied up, a
    /// read-only descriptor of the upper copy (one per node, kept until the kernel forgets it),
    /// so readers that opened the file before see what is written after, as with kernel
    /// overlayfs. nil while the file is still only in a lower layer.
    package func copiedUpReader(_ id: NodeID) -> SharedDescriptor? {
        guard let n = nodes.get(id), n.isInUpper(stack) else { return nil }
        if let held = n.state.withLock({ $0.upperReader }) { return held }
        guard let fd = try? openOwn(n, flags: O_RDONLY) else { return nil }
        let made = SharedDescriptor(fd)
        return n.state.withLock { s in
            if let held = s.upperReader { return held }
            s.upperReader = made
            return made
        }
    }

    /// Closes a file handle (the bridge gives the `fh` back with `Descriptor(adopting:)`).
    public func release(_ file: consuming Descriptor) {
        file.close()
    }
}
