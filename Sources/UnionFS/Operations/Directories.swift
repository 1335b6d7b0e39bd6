import Glibc
import Synchronization
import SystemPackage

/// An open directory: its merged listing, taken once per handle.
///
/// The listing is taken at the first `readdir`, not at `opendir`: with `cache_readdir` the kernel
/// opens a directory it has listed before and then serves the listing from its own cache without
/// asking, so merging at `opendir` would be work thrown away on every warm walk. Offsets are
/// positions in this snapshot (entry i has offset i + 1), so they stay valid for the life of the
/// handle whatever happens to the directory meanwhile; `rewinddir` (offset 0 after a change) sees
/// the snapshot, as SEMANTICS.md §2 allows. Freed at `releasedir`.
public final class DirectoryHandle: Sendable {
    public let node: UInt64
    let parentID: UInt64
    /// The merged directory's layers when the handle was opened.
    let layers: [DirLayer]
    let stack: LayerStack
    /// `.`, `..`, then the merged entries, once taken. Lock order: leaf lock, held across the
    /// merge only by the first reader of this handle (the kernel serializes readdir per file).
    private let listing = Mutex<[MergedEntry]?>(nil)
    /// The upper layer's directory's change time when the listing was taken, so readdirplus
    /// knows whether the listing still says where each entry lives.
    private let upperState = Mutex<UpperChange>(.untrusted)

    enum UpperChange {
        /// The directory had no upper part.
        case absent
        case at(timespec)
        /// Changed too recently to tell a later change by its time stamp (time stamps are
        /// coarse on some filesystems): readdirplus resolves each entry in full.
        case untrusted
    }

    init(node: UInt64, parentID: UInt64, layers: [DirLayer], stack: LayerStack) {
        self.node = node
        self.parentID = parentID
        self.layers = layers
        self.stack = stack
    }

    /// `.`, `..`, then the merged entries; merged on the first call.
    public func entries() throws(Errno) -> [MergedEntry] {
        try listing.withLock { (cached) throws(Errno) -> [MergedEntry] in
            if let cached { return cached }
            let change = try upperChange()
            var entries = [
                MergedEntry(name: try! Name("."), type: UInt8(DT_DIR), ino: node),
                MergedEntry(name: try! Name(".."), type: UInt8(DT_DIR), ino: parentID),
            ]
            entries.append(contentsOf: try stack.mergedListing(of: layers))
            cached = entries
            upperState.withLock { $0 = change }
            return entries
        }
    }

    /// The change time of this directory in the upper layer now.
    private func upperChange() throws(Errno) -> UpperChange {
        guard let top = layers.first, top.layer == 0, stack.layers[0].isUpper else { return .absent }
        let ctime = try top.dir.stat().st_ctim
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // A change within the last 100 ms may share its time stamp with the next one.
        let age = Int64(now.tv_sec - ctime.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - ctime.tv_nsec)
        return age > 100_000_000 ? .at(ctime) : .untrusted
    }

    /// True while nothing was created, removed or renamed in the directory's upper part since
    /// the listing was taken (lower layers never change under a mount). The caller also checks
    /// that the directory did not gain an upper part meanwhile.
    func listingIsCurrent() -> Bool {
        switch upperState.withLock({ $0 }) {
        case .absent: return true
        case .untrusted: return false
        case .at(let then):
            guard let top = layers.first, let now = try? top.dir.stat().st_ctim else { return false }
            return now.tv_sec == then.tv_sec && now.tv_nsec == then.tv_nsec
        }
    }
}

extension UnionFileSystem {
    /// Opens a directory; its merged listing is taken at the first readdir.
    public func opendir(_ id: UInt64) throws(Errno) -> DirectoryHandle {
        let n = try node(id)
        let layers = try n.directoryLayers()
        let parentID = n.state.withLock { $0.parent?.id } ?? InodeNumbers.root
        return DirectoryHandle(node: id, parentID: parentID, layers: layers, stack: stack)
    }
}
