import Glibc
import SystemPackage

/// An open directory: its merged listing, taken once at `opendir`.
///
/// Offsets are positions in this snapshot (entry i has offset i + 1), so they stay valid for the
/// life of the handle whatever happens to the directory meanwhile; `rewinddir` (offset 0 after a
/// change) sees the snapshot, as SEMANTICS.md §2 allows. Freed at `releasedir`.
public final class DirectoryHandle: Sendable {
    public let node: UInt64
    /// `.`, `..`, then the merged entries.
    public let entries: [MergedEntry]

    init(node: UInt64, entries: [MergedEntry]) {
        self.node = node
        self.entries = entries
    }
}

extension UnionFileSystem {
    /// Takes the merged listing of a directory.
    public func opendir(_ id: UInt64) throws(Errno) -> DirectoryHandle {
        let n = try node(id)
        let layers = try n.directoryLayers()
        let parentID = n.state.withLock { $0.parent?.id } ?? InodeNumbers.root
        var entries = [
            MergedEntry(name: try! Name("."), type: UInt8(DT_DIR), ino: id),
            MergedEntry(name: try! Name(".."), type: UInt8(DT_DIR), ino: parentID),
        ]
        entries.append(contentsOf: try stack.mergedListing(of: layers))
        return DirectoryHandle(node: id, entries: entries)
    }
}
