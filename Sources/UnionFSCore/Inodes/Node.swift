import Glibc
import Synchronization
import SystemPackage

/// One file or directory the kernel knows by a node id.
///
/// The node id (`NodeID`) is the inode number the mount reports (`st_ino`), except for the root
/// (1) and the per-name nodes of lower hard links, so a file keeps its id across copy-up and
/// hard links share one node. The node remembers where it
/// lives now (`HeldEntry`: its topmost layer, and for a directory every layer that merges
/// into it) and the name it was found under, which copy-up needs to rebuild its path in the upper.
///
/// Hard links: one node per upper inode, with every name the kernel found it under remembered
/// (`name` and `otherNames`). Removing or renaming one name moves the node to another one
/// (`nameGone`, `renamed`), so the other names keep working, and the kernel, which sees one
/// inode, keeps `st_nlink` right through every name at once: it adjusts its own count on link
/// and unlink, and a fresh `getattr` stats whichever name is left. This was chosen over one node
/// per name with notify invalidation of the siblings because a notify must not be sent from the
/// path of a related request nor under a lock such a request needs (DESIGN-NOTES.md), which
/// would mean a notifier thread and a window in which a sibling shows a stale count; one node
/// has neither. Lower hard links are the exception: each name has its own node until copy-up
/// (`InodeNumbers.linkNode`), as copy-up breaks them the way the kernel does.
///
/// The entry holds open layer directories (one descriptor per merged layer for a directory; the
/// parent's for a file). When the mount holds too many, `NodeTable.giveBackDescriptors` drops
/// the entries of nodes not used lately; the next use finds the node again by (parent, name),
/// exactly as a lookup would, and checks that the same file is there (`DescriptorBudget`).
///
/// Lock order: a parent's lock before a child's; a node's lock before the node table's shard
/// locks; never two siblings at once. No lock is held across a blocking syscall on a read path.
public final class Node: Sendable {
    public let id: NodeID
    /// The stack the node lives in, to find it again once its descriptors were given back.
    let stack: LayerStack
    let state: Mutex<State>
    /// For a directory: bumped after every change of its names (create, link, unlink, rmdir,
    /// rename from or into it), so that open handles take their listing again.
    let listingGeneration = Atomic<UInt64>(0)
    /// Held for the whole of this node's copy-up so that racing writers copy it once, and while
    /// an open, or the read-ahead of its directory, stores its lower file in the kernel's page
    /// cache (`storingLowerData`). Taken before `state`, never while holding another node's
    /// `copyUpLock` except a parent's (ancestors are copied first, top down, each under its own
    /// lock, released before the next).
    let copyUpLock = Mutex<Void>(())
    /// A directory (merged over one or more layers) or not; never changes for a node id.
    /// (Last, with the lock, so both fill what would be padding: `NodeFootprintTests`.)
    let isDirectory: Bool

    /// Records that the directory's names changed.
    func listingChanged() { listingGeneration.add(1, ordering: .releasing) }

    /// Kept small: a node is made for every entry the kernel looks up (a hundred thousand after
    /// a walk of a root filesystem), so what most nodes never use lives in `Rare`, and the
    /// flags sit together (`NodeFootprintTests` bounds the heap per node).
    struct State: @unchecked Sendable {
        /// The directory it was looked up in; nil only for the root.
        var parent: Node?
        /// Its name in `parent`; nil only for the root.
        var name: Name?
        /// Where it lives, with its layer directories open; nil once given back to the
        /// descriptor budget (never for the root). Change it only through `set` or `update`.
        private(set) var entry: HeldEntry?
        /// Bumped by every change of where the node lives, so that an entry found again by
        /// name is kept only if nothing moved the node meanwhile.
        private(set) var generation: UInt64 = 0
        private var top: Int32
        /// One bit each (a node is kept small: `NodeFootprintTests`).
        var flags: Flags = [.used]
        /// Bumped (wrapping) by every setxattr through the mount, so that what a read of the
        /// xattrs found is recorded only if no setxattr ran meanwhile.
        var xattrChanges: UInt16 = 0

        struct Flags: OptionSet {
            let rawValue: UInt8
            /// Used since the last sweep of the descriptor budget (the clock's second chance).
            static let used = Flags(rawValue: 1 << 0)
            /// Can no longer be found by name (a removed directory the kernel still holds):
            /// keeps its descriptors until the kernel forgets it.
            static let keepsDescriptors = Flags(rawValue: 1 << 1)
            /// Known to carry no xattrs at all: getxattr answers ENODATA without a syscall (the
            /// kernel asks for `security.capability` before every write). Cleared by setxattr.
            static let hasNoXattrs = Flags(rawValue: 1 << 2)
            /// Its xattr list was read once (the first getxattr asks for the list, one syscall
            /// through the parent's descriptor, before opening anything).
            static let xattrsListed = Flags(rawValue: 1 << 3)
            /// A directory known to carry no default ACL: creating in it applies the umask
            /// without a syscall (a directory with other xattrs, such as an opaque one,
            /// otherwise paid two calls through `/proc` per create). Cleared by setxattr.
            static let noDefaultACL = Flags(rawValue: 1 << 4)
            /// Its lower file's content was stored in the kernel's page cache at an open, or
            /// found too large to be (`UnionFileSystem.storingLowerData`): later opens leave
            /// the cache to the kernel.
            static let lowerDataStored = Flags(rawValue: 1 << 5)
            /// A directory one of whose small files was stored at its open (`readAheadStart`).
            static let oneFileStored = Flags(rawValue: 1 << 6)
            /// A directory whose files were read ahead once (`readAheadStart`).
            static let readAhead = Flags(rawValue: 1 << 7)
        }
        private var rare: Rare?

        /// What few nodes hold, boxed apart (one pointer in every node instead of four).
        private final class Rare {
            var otherNames: [NodeName] = []
            var unlinked: SharedDescriptor?
            var upperReader: SharedDescriptor?
            var listing: DirectoryHandle?
            var isEmpty: Bool { otherNames.isEmpty && unlinked == nil && upperReader == nil && listing == nil }
        }

        /// Changes the rare part, making the box on the first change and dropping it when empty.
        private mutating func changeRare(_ change: (Rare) -> Void) {
            let box = rare ?? Rare()
            change(box)
            rare = box.isEmpty ? nil : box
        }

        /// The layer of its topmost entry, known even while `entry` is nil.
        var topLayer: Int { Int(top) }
        /// The other names of a hard-linked file the kernel found it under (never the one in
        /// `parent`/`name`); empty for directories and files with one name.
        var otherNames: [NodeName] {
            get { rare?.otherNames ?? [] }
            set { changeRare { $0.otherNames = newValue } }
        }
        /// Set when the last name of this file went while the kernel still holds the node (an
        /// open file): an `O_PATH` descriptor of the file itself, so attributes come from the
        /// file (nlink 0), not from its old name, which now holds a whiteout or another file.
        var unlinked: SharedDescriptor? {
            get { rare?.unlinked }
            set { changeRare { $0.unlinked = newValue } }
        }
        /// A read-only descriptor of the upper copy, for readers that opened the lower file
        /// before it was copied up (`UnionFileSystem.copiedUpReader`).
        var upperReader: SharedDescriptor? {
            get { rare?.upperReader }
            set { changeRare { $0.upperReader = newValue } }
        }
        /// For a directory being listed through the mount: the listing readdir answers from,
        /// shared by every reader (offsets are name hashes, valid for any of them). Dropped when
        /// a reader reaches its end, by the descriptor budget, and when the kernel forgets the
        /// node (it holds the node, so these three break the cycle).
        var listing: DirectoryHandle? {
            get { rare?.listing }
            set { if newValue != nil || rare != nil { changeRare { $0.listing = newValue } } }
        }

        init(parent: Node?, name: Name?, entry: ResolvedEntry) {
            self.parent = parent
            self.name = name
            self.entry = HeldEntry(entry)
            top = Int32(entry.topLayer)
        }

        /// Replaces where the node lives.
        mutating func set(_ e: ResolvedEntry) {
            entry = HeldEntry(e)
            top = Int32(e.topLayer)
            generation &+= 1
        }

        /// Changes where the node lives; `change` runs only on an entry that is held (one that
        /// was given back is found again as it now is). `topLayer` is the new topmost layer.
        mutating func update(topLayer newTop: Int, _ change: (inout HeldEntry) -> Void) {
            if entry != nil { change(&entry!) }
            top = Int32(newTop)
            generation &+= 1
        }

        /// True when `n` in `p` is the name the node uses.
        func isNamed(_ n: Name, in p: Node) -> Bool { parent?.id == p.id && name == n }
        func isNamed(_ n: borrowing FileName, in p: Node) -> Bool {
            guard parent?.id == p.id, let name else { return false }
            return n.equals(name)
        }

        /// Records that the kernel found the node as `n` in `p`: that name is used from now on.
        /// With `keepOld` (a file with several links) the name used before stays known.
        mutating func found(as n: Name, in p: Node, keepOld: Bool) {
            if keepOld, let old = parent, let oldName = name, !(old.id == p.id && oldName == n),
               !otherNames.contains(where: { $0.is(old, oldName) }) {
                otherNames.append(NodeName(parent: old, name: oldName))
            }
            if !otherNames.isEmpty { otherNames.removeAll { $0.is(p, n) } }
            parent = p
            name = n
        }

        /// The name `from` in `p` is now `to` in `q`. Returns false when that was not a name
        /// kept in `otherNames` (the caller then moves the node itself).
        mutating func renameOther(_ from: Name, in p: Node, to: Name, in q: Node) -> Bool {
            guard !isNamed(from, in: p),
                  let i = otherNames.firstIndex(where: { $0.is(p, from) }) else { return false }
            otherNames[i] = NodeName(parent: q, name: to)
            return true
        }

        /// Drops the entry (and with it the node's hold on its layer directories) unless the
        /// node was used since the last sweep, cannot be found again by name, or is the root.
        mutating func giveBack() {
            if flags.contains(.used) { flags.remove(.used); return }
            listing = nil
            guard entry != nil, parent != nil, !flags.contains(.keepsDescriptors), unlinked == nil else { return }
            entry = nil
        }
    }

    /// One name of a node: the directory node and the name in it.
    struct NodeName {
        let parent: Node
        let name: Name
        /// Compared by node id: a directory the kernel forgot and found again is a new object.
        func `is`(_ p: Node, _ n: Name) -> Bool { parent.id == p.id && name == n }
        func `is`(_ p: Node, _ n: borrowing FileName) -> Bool { parent.id == p.id && n.equals(name) }
    }

    init(id: NodeID, stack: LayerStack, parent: Node?, name: Name?, entry: ResolvedEntry) {
        self.id = id
        self.stack = stack
        isDirectory = entry.isDirectory
        state = Mutex(State(parent: parent, name: name, entry: entry))
    }

    /// True when the topmost entry is in layer 0 of a writable stack (the upper).
    func isInUpper(_ stack: LayerStack) -> Bool {
        stack.isWritable && state.withLock { $0.topLayer == 0 }
    }

    var parent: Node? { state.withLock { $0.parent } }

    /// Where the node lives now, and its name; found again by name if its descriptors were
    /// given back (`ESTALE` if another file now has the name).
    func location() throws(Errno) -> (entry: HeldEntry, name: Name?) {
        for _ in 0..<4 {
            let (held, parent, name, generation) = state.withLock { s in
                s.flags.insert(.used)
                return (s.entry, s.parent, s.name, s.generation)
            }
            if let held { return (held, name) }
            guard let parent, let name else { throw .ioError }  // the root is always held
            let parentLayers = try parent.directoryLayers()
            let found = try name.withFileName { (n) throws(Errno) -> ResolvedEntry in
                let found = try stack.resolve(n, in: parentLayers)
                guard stack.nodeID(of: found, parent: parent.id, name: n) == id else { throw .staleNFSFileHandle }
                return found
            }
            let kept = state.withLock { s -> (HeldEntry, Name?)? in
                if let e = s.entry { return (e, s.name) }
                guard s.generation == generation else { return nil }  // moved meanwhile: again
                s.set(found)
                return (s.entry!, s.name)
            }
            if let kept { return kept }
        }
        throw .staleNFSFileHandle
    }

    /// The merged directory's layers, or `ENOTDIR`.
    func directoryLayers() throws(Errno) -> [DirectoryPart] {
        guard isDirectory else { throw .notDirectory }
        let layers = try location().entry.layers
        guard !layers.isEmpty else { throw .notDirectory }
        return layers
    }

    /// Runs `body` with the topmost entry as (directory in its layer, name), or for a directory
    /// (and the root) with its own descriptor and nil.
    func withTopEntry<R: ~Copyable>(_ body: (LayerDir, borrowing FileName?) throws(Errno) -> R) throws(Errno) -> R {
        let (entry, name) = try location()
        if let first = entry.layers.first { return try body(first.dir, nil) }
        guard let name else { throw .noSuchFileOrDirectory }
        return try name.withFileName { (n) throws(Errno) in try body(entry.parentDir, FileName(unchecked: n.cString, count: n.count)) }
    }

    /// `lstat` of the topmost entry, with the reported inode number, and the number of layers
    /// a directory merges (several: the mount reports nlink 1, as the kernel does).
    func attributes() throws(Errno) -> (stat: stat, mergedLayers: Int) {
        if let file = state.withLock({ $0.unlinked }) {
            var st = try Sys.fstat(file.fd)
            st.st_ino = ino_t(stack.inodes.shown(id))
            return (st, 0)
        }
        for _ in 0..<4 {
            let generation = state.withLock { $0.generation }
            let (entry, name) = try location()
            var st: stat
            if let first = entry.layers.first {
                st = try first.dir.stat()
            } else {
                guard let name else { throw .noSuchFileOrDirectory }
                st = try name.withFileName { (n) throws(Errno) in try entry.parentDir.stat(n) }
                // An upper name may have gone to another file meanwhile (lower names never
                // change): never report its attributes as this node's. ESTALE makes the kernel
                // walk the path again.
                if entry.topLayer == 0 && stack.isWritable && !isOwn(st) {
                    if state.withLock({ $0.generation }) != generation { continue }
                    throw .staleNFSFileHandle
                }
            }
            st.st_ino = ino_t(stack.inodes.shown(id))
            return (st, entry.layers.count)
        }
        throw .staleNFSFileHandle
    }

    /// True when `st` is this node's file: its own inode or its copy-up.
    func isOwn(_ st: stat) -> Bool {
        let number = stack.inodes.reported(FileID(st))
        return number == id.rawValue || number == stack.inodes.shown(id)
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
        let slots = Mutex<[NodeID: Slot]>([:])
    }
    private struct Slot {
        let node: Node
        var lookups: UInt64
    }

    private let shards: [Shard]
    private static let shardCount = 64

    init() { shards = (0..<Self.shardCount).map { _ in Shard() } }

    @inline(__always)
    private func shard(_ node: NodeID) -> Shard {
        let id = node.rawValue
        return shards[Int(truncatingIfNeeded: (id ^ (id >> 17)) & UInt64(Self.shardCount - 1))]
    }

    func get(_ id: NodeID) -> Node? {
        shard(id).slots.withLock { $0[id]?.node }
    }

    /// Adds one lookup to the node `id`, making it with `make` when the kernel holds none.
    func reference(_ id: NodeID, make: () -> Node) -> Node {
        shard(id).slots.withLock { slots in Self.count(&slots[id], make) }
    }

    /// One more lookup in `slot`, made when empty. Passed `inout` from the dictionary's
    /// subscript, so the id is hashed and found once, not once to read and again to write.
    private static func count(_ slot: inout Slot?, _ make: () -> Node) -> Node {
        if slot != nil {
            slot!.lookups += 1
            return slot!.node
        }
        let node = make()
        slot = Slot(node: node, lookups: 1)
        return node
    }

    /// Adds a node the kernel must never forget (the root).
    func pin(_ node: Node) {
        shard(node.id).slots.withLock { $0[node.id] = Slot(node: node, lookups: UInt64.max / 2) }
    }

    /// Drops `count` lookups; the node goes when none is left (and its memory back to the
    /// system once enough went: `MemoryTrim`).
    func forget(_ id: NodeID, _ count: UInt64) {
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
        if let freed {
            freed.state.withLock { $0.listing = nil }
            trim.forgot(1)
        }
    }
    private let trim = MemoryTrim()

    /// Asks the nodes to give back their layer directories, a shard at a time, until fewer
    /// than `low` are open in the process: the first pass clears each node's `used` mark, the
    /// second drops the entries of the nodes still unmarked (`Node.State.giveBack`). One sweep
    /// at a time; a request that finds one running goes on without waiting.
    func giveBackDescriptors(below low: Int) {
        guard sweeping.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        defer { sweeping.store(false, ordering: .releasing) }
        let start = hand.load(ordering: .relaxed)
        for step in 0..<(2 * Self.shardCount) {
            let i = (start + step) % Self.shardCount
            // Copied out first: node locks come before shard locks.
            let held = shards[i].slots.withLock { slots in slots.values.map(\.node) }
            for n in held { n.state.withLock { $0.giveBack() } }
            if LayerDir.openCount <= low {
                hand.store((i + 1) % Self.shardCount, ordering: .relaxed)
                return
            }
        }
    }
    private let sweeping = Atomic<Bool>(false)
    private let hand = Atomic<Int>(0)

    /// Number of nodes held (for tests and memory checks).
    var count: Int { shards.reduce(0) { n, s in n + s.slots.withLock { $0.count } } }
}
