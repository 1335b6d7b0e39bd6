import Glibc
import Synchronization

/// The inode numbers the mount reports: unique and stable for the life of the mount, the same
/// in `stat` and in readdir's `d_ino`, shared by hard links, and unchanged by copy-up.
///
/// Like kernel overlayfs with `xino`, the number is the real inode number with the index of its
/// filesystem in the top 16 bits. The first layer's filesystem has index 0, so when every layer
/// is on one filesystem (the common case) `st_ino` is the real inode number. The rare inode that
/// does not fit in 48 bits gets a number from a counter, remembered for the life of the mount.
///
/// Copy-up gives a file a new real inode in the upper; `recordCopyUp` remembers that the new one
/// reports the old number.
public final class InodeNumbers: Sendable {
    /// Lock order: leaf lock; nothing else is taken while it is held.
    private let state: Mutex<State>
    /// Set once anything was copied up, so the common path skips the map.
    private let anyCopiedUp = Atomic<Bool>(false)

    private struct State {
        var deviceIndex: [UInt64: UInt64] = [:]
        var overflow: [FileID: UInt64] = [:]
        var nextOverflow: UInt64 = 1 << 63
        var copiedUp: [FileID: UInt64] = [:]
        var linkNodes: [LinkName: NodeID] = [:]
        var shownFor: [NodeID: UInt64] = [:]
    }

    /// One name of a lower hard link: the directory's node id and the name in it.
    private struct LinkName: Hashable {
        let parent: NodeID
        let name: Name
    }
    /// Set once a lower hard link was given per-name nodes, so the common path skips the map.
    private let anyLinkNode = Atomic<Bool>(false)

    /// The FUSE root node id's number; no other file reports it.
    private static let root = NodeID.root.rawValue

    /// The layers' filesystems in index order; immutable, so the common path takes no lock.
    private let knownDevices: [UInt64]

    init(devices: [UInt64]) {
        var s = State()
        var known: [UInt64] = []
        for d in devices where s.deviceIndex[d] == nil {
            s.deviceIndex[d] = UInt64(known.count)
            known.append(d)
        }
        knownDevices = known
        state = Mutex(s)
    }

    /// The number reported for the file with this real identity.
    @inline(__always)
    public func reported(_ id: FileID) -> UInt64 {
        if anyCopiedUp.load(ordering: .relaxed) {
            if let origin = state.withLock({ $0.copiedUp[id] }) { return origin }
        }
        if id.inode < (1 << 48), let i = knownDevices.firstIndex(of: id.device) {
            let v = id.inode | (UInt64(i) << 48)
            if v > Self.root { return v }
        }
        return state.withLock { s in
            let index: UInt64
            if let i = s.deviceIndex[id.device] { index = i } else {
                index = UInt64(s.deviceIndex.count)
                s.deviceIndex[id.device] = index
            }
            if id.inode < (1 << 48) && index < (1 << 15) {
                let v = id.inode | (index << 48)
                if v > Self.root { return v }
            }
            if let v = s.overflow[id] { return v }
            let v = s.nextOverflow
            s.nextOverflow += 1
            s.overflow[id] = v
            return v
        }
    }

    /// Remembers that the upper file `upper` is the copy-up of a file that reported `number`.
    public func recordCopyUp(_ upper: FileID, reports number: UInt64) {
        state.withLock { $0.copiedUp[upper] = number }
        anyCopiedUp.store(true, ordering: .relaxed)
    }

    /// The node id for one name of a lower file with several links (reporting `number`).
    ///
    /// Copy-up breaks hard links between lower files (the kernel does the same without its
    /// `index` feature): a change through one name must not show through the other. So each
    /// name gets its own node, with an id from the overflow range, while `st_ino` stays
    /// `number` for every name, as the kernel reports it. Stable for the life of the mount.
    public func linkNode(for number: UInt64, parent: NodeID, name: Name) -> NodeID {
        let id = state.withLock { s in
            let key = LinkName(parent: parent, name: name)
            if let id = s.linkNodes[key] { return id }
            let id = NodeID(s.nextOverflow)
            s.nextOverflow += 1
            s.linkNodes[key] = id
            s.shownFor[id] = number
            return id
        }
        anyLinkNode.store(true, ordering: .relaxed)
        return id
    }

    /// The `st_ino` shown for the node `id`: the id itself but for per-name link nodes.
    @inline(__always)
    public func shown(_ id: NodeID) -> UInt64 {
        guard anyLinkNode.load(ordering: .relaxed) else { return id.rawValue }
        return state.withLock { $0.shownFor[id] } ?? id.rawValue
    }

    /// Forgets a copy-up record once its upper file is gone (its inode number may be reused).
    public func forgetCopyUp(_ upper: FileID) {
        _ = state.withLock { $0.copiedUp.removeValue(forKey: upper) }
    }
}
