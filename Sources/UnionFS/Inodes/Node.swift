import Glibc
import Synchronization
import SystemPackage

/// One file or directory the kernel knows by a node id.
///
/// The node id is the inode number the mount reports (`st_ino`), except for the root (1), so a
/// file keeps its id across copy-up and hard links share one node. The node remembers where it
/// lives now (`ResolvedEntry`: its topmost layer, and for a directory every layer that merges
/// into it) and the name it was found under, which copy-up needs to rebuild its path in the upper.
///
/// Lock order: a parent's lock before a child's; a node's lock before the node table's shard
/// locks; never two siblings at once. No lock is held across a blocking syscall on a read path.
public final class Node: Sendable {
    public let id: UInt64
    let state: Mutex<State>
    /// Held for the whole of this node's copy-up so that racing writers copy it once. Taken
    /// before `state`, never while holding another node's `copyUpLock` except a parent's
    /// (ancestors are copied first, top down, each under its own lock, released before the next).
    let copyUpLock = Mutex<Void>(())

    struct State: @unchecked Sendable {
        /// The directory it was looked up in; nil only for the root.
        var parent: Node?
        /// Its name in `parent`; nil only for the root.
        var name: Name?
        var entry: ResolvedEntry
        /// Known to carry no xattrs at all: getxattr answers ENODATA without a syscall (the
        /// kernel asks for `security.capability` before every write). Cleared by setxattr.
        var hasNoXattrs = false
        /// Set when the last name of this file went while the kernel still holds the node (an
        /// open file): an `O_PATH` descriptor of the file itself, so attributes come from the
        /// file (nlink 0), not from its old name, which now holds a whiteout or another file.
        var unlinked: OwnedDescriptor?
        /// Its xattr list was read once (the first getxattr asks for the list, one syscall
        /// through the parent's descriptor, before opening anything).
        var xattrsListed = false
    }

    init(id: UInt64, parent: Node?, name: Name?, entry: ResolvedEntry) {
        self.id = id
        state = Mutex(State(parent: parent, name: name, entry: entry))
    }

    /// True when the topmost entry is in layer 0 of a writable stack (the upper).
    func isInUpper(_ stack: LayerStack) -> Bool {
        stack.isWritable && state.withLock { $0.entry.topLayer == 0 }
    }

    var parent: Node? { state.withLock { $0.parent } }

    /// A snapshot of where the node lives now.
    var location: (entry: ResolvedEntry, name: Name?) {
        state.withLock { ($0.entry, $0.name) }
    }

    /// The merged directory's layers, or `ENOTDIR`.
    func directoryLayers() throws(Errno) -> [DirLayer] {
        let layers = state.withLock { $0.entry.layers }
        guard !layers.isEmpty else { throw .notDirectory }
        return layers
    }

    /// Runs `body` with the topmost entry as (directory in its layer, name), or for a directory
    /// (and the root) with its own descriptor and nil.
    func withTopEntry<R>(_ body: (LayerDir, UnsafePointer<CChar>?) throws(Errno) -> R) throws(Errno) -> R {
        let (entry, name) = location
        if let first = entry.layers.first { return try body(first.dir, nil) }
        guard let name else { throw .noSuchFileOrDirectory }
        return try name.withCString { (n) throws(Errno) in try body(entry.parentDir, n) }
    }

    /// `lstat` of the topmost entry, with the reported inode number.
    func attributes() throws(Errno) -> stat {
        if let file = state.withLock({ $0.unlinked }) {
            var st = try Sys.fstat(file.fd)
            st.st_ino = ino_t(id)
            return st
        }
        var st = try withTopEntry { (dir, name) throws(Errno) -> stat in
            if let name { return try dir.stat(name) }
            return try dir.stat()
        }
        st.st_ino = ino_t(id)
        return st
    }
}

/// The nodes the kernel holds, by id, with their lookup counts.
///
/// Sharded so that requests on different files do not contend on one lock. A node is dropped
/// when the kernel forgets its last lookup; the kernel never forgets a directory before its
/// children, so a child's strong reference to its parent never outlives the table's.
final class NodeTable: Sendable {
    private final class Shard: Sendable {
        /// Lock order: leaf lock; taken after any node lock, never before one.
        let slots = Mutex<[UInt64: Slot]>([:])
    }
    private struct Slot {
        let node: Node
        var lookups: UInt64
    }

    private let shards: [Shard]
    private static let shardCount = 64

    init() { shards = (0..<Self.shardCount).map { _ in Shard() } }

    @inline(__always)
    private func shard(_ id: UInt64) -> Shard {
        shards[Int(truncatingIfNeeded: (id ^ (id >> 17)) & UInt64(Self.shardCount - 1))]
    }

    func get(_ id: UInt64) -> Node? {
        shard(id).slots.withLock { $0[id]?.node }
    }

    /// Adds one lookup to the node `id`, making it with `make` when the kernel holds none.
    func reference(_ id: UInt64, make: () -> Node) -> Node {
        shard(id).slots.withLock { slots in
            if var slot = slots[id] {
                slot.lookups += 1
                slots[id] = slot
                return slot.node
            }
            let node = make()
            slots[id] = Slot(node: node, lookups: 1)
            return node
        }
    }

    /// Adds a node the kernel must never forget (the root).
    func pin(_ node: Node) {
        shard(node.id).slots.withLock { $0[node.id] = Slot(node: node, lookups: UInt64.max / 2) }
    }

    /// Drops `count` lookups; the node goes when none is left (and its memory back to the
    /// system once enough went: `MemoryTrim`).
    func forget(_ id: UInt64, _ count: UInt64) {
        let freed = shard(id).slots.withLock { slots -> Node? in
            guard var slot = slots[id] else { return nil }
            if slot.lookups <= count {
                slots[id] = nil
                return slot.node
            } else {
                slot.lookups -= count
                slots[id] = slot
                return nil
            }
        }
        if freed != nil { trim.forgot(1) }
    }
    private let trim = MemoryTrim()

    /// Number of nodes held (for tests and memory checks).
    var count: Int { shards.reduce(0) { n, s in n + s.slots.withLock { $0.count } } }
}
