import Glibc
import Synchronization
import SystemPackage

/// The filesystem operations behind a mount, apart from the FUSE protocol.
///
/// Each method takes node ids (`NodeID`) and names validated once at the edge (`FileName`),
/// returns plain values and throws `Errno`; the bridge in `FUSE/` turns each into exactly one reply. Nothing here imports
/// libfuse, so every operation can be tested without mounting.
public final class UnionFileSystem: Sendable {
    public let stack: LayerStack
    public let options: FileSystemOptions
    let nodes = NodeTable()
    let root: Node
    /// When nodes give back their layer directories.
    let budget: DescriptorBudget
    /// Whether `close` of an upper file can report anything (`flush` does a `close` of a
    /// duplicate to find out). The filesystems in `silentClose` have no flush operation, so
    /// their `close` never fails: the kernel is then told not to send FLUSH at each close
    /// (`noflush`), which spares one round trip per file written. NFS, FUSE and the rest keep it.
    public let closeCanFail: Bool
    /// tmpfs, ext2/3/4, xfs, btrfs, f2fs, bcachefs (`statfs(2)` magic numbers).
    static let silentClose: Set<Int> = [0x0102_1994, 0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010, 0xCA45_1A4E]
    /// The kernel agreed to its writeback cache (set once, by the FUSE bridge at init). Files
    /// are then opened read-write whatever the caller asked (the kernel reads to fill partial
    /// pages) and without `O_APPEND` (the kernel appends at the size it knows).
    /// The rest of what INIT settles is the transport's own (`FuseConnection`).
    package let writebackCache = Atomic<Bool>(false)
    /// The kernel agreed to leave clearing setuid to the daemon (`clearsSetIDItself`).
    package let killPrivileges = Atomic<Bool>(false)

    public init(stack: LayerStack, options: FileSystemOptions = FileSystemOptions()) throws(Errno) {
        self.stack = stack
        self.options = options
        let view = UnionView(stack: stack)
        budget = options.descriptorBudget ?? .fromProcessLimit()
        if let upper = stack.upper, let type = try? Sys.filesystemType(upper.root.fd) {
            closeCanFail = !Self.silentClose.contains(type)
        } else {
            closeCanFail = stack.isWritable
        }
        root = Node(id: .root, stack: stack, parent: nil, name: nil, entry: try view.root())
        nodes.pin(root)
    }

    /// True when changes are refused with `EROFS`.
    public var isReadOnly: Bool { options.readOnly || !stack.isWritable }

    /// The node `id`, or `ENOENT` for an id the kernel should not be holding (stale or forged).
    /// Every request starts here, so this is also where the descriptor budget is kept: nodes
    /// found again by name (`Node.location`) open layer directories as lookups do.
    @inline(__always)
    func node(_ id: NodeID) throws(Errno) -> Node {
        keepWithinBudget()
        guard let n = nodes.get(id) else { throw .noSuchFileOrDirectory }
        return n
    }

    /// Sweeps the node table when more layer directories are open than the budget allows.
    @inline(__always)
    func keepWithinBudget() {
        if LayerDir.openCount > budget.high { nodes.giveBackDescriptors(below: budget.low) }
    }

    /// Number of nodes currently held for the kernel.
    public var nodeCount: Int { nodes.count }

    // MARK: - Lookup and attributes

    /// Resolves `name` in the directory `parent` and counts one kernel lookup of the result.
    public func lookup(parent: NodeID, name: borrowing FileName) throws(Errno) -> NodeEntry {
        let p = try node(parent)
        let entry = try stack.resolve(name, in: p.directoryLayers())
        return reference(entry, name: name, in: p)
    }

    /// Counts one kernel lookup of `entry`, found under `name` in `p`, and returns its
    /// attributes as the mount shows them. Allocates only when it makes a node or the node
    /// was known under another name. `owned`, when given, is `name` already stored (a
    /// listing's entry), which a new node then shares instead of a copy of its own.
    func reference(_ entry: ResolvedEntry, name: borrowing FileName, in p: Node, owned: Name? = nil) -> NodeEntry {
        let id = stack.nodeID(of: entry, parent: p.id, name: name)
        var made = false
        let child = nodes.reference(id) {
            made = true
            return Node(id: id, stack: stack, parent: p, name: owned ?? Name(name), entry: entry)
        }
        if made {
            keepWithinBudget()
        } else {
            // The kernel found this inode under this name now: remember it there, unless a
            // copy-up that finished meanwhile already moved it higher in the stack.
            child.state.withLock { s in
                if entry.topLayer <= s.topLayer {
                    if !s.isNamed(name, in: p) {
                        s.found(as: Name(name), in: p, keepOld: !entry.isDirectory && entry.stat.st_nlink > 1)
                    }
                    s.set(entry)
                }
                s.unlinked = nil  // found by name again: a new file that got the same inode
            }
        }
        var st = entry.stat
        st.st_ino = ino_t(stack.inodes.shown(id))
        if entry.layers.count > 1 { st.st_nlink = 1 }
        return NodeEntry(node: id, attributes: present(st, node: id))
    }

    /// The kernel dropped `count` lookups of `id`.
    public func forget(_ id: NodeID, count: UInt64) {
        if id == .root { return }
        nodes.forget(id, count)
    }

    /// `lstat` of a node as the mount reports it.
    public func getattr(_ id: NodeID) throws(Errno) -> stat {
        let n = try node(id)
        var (st, merged) = try n.attributes()
        if merged > 1 { st.st_nlink = 1 }
        return present(st, node: id)
    }

    /// The target of a symlink.
    public func readlink(_ id: NodeID) throws(Errno) -> [UInt8] {
        let n = try node(id)
        if !n.isDirectory && n.isInUpper(stack) {
            let own = try ownFile(n)  // the node's own link, not what has its name now
            guard own.stat.st_mode & S_IFMT == S_IFLNK else { throw .invalidArgument }
            return try readlink(ofPathDescriptor: own.descriptor)
        }
        return try n.withTopEntry { (dir, name) throws(Errno) -> [UInt8] in
            switch name {
            case .some(let name): return try dir.readlink(name)
            case .none: throw .invalidArgument
            }
        }
    }

    /// Filesystem statistics of the top layer.
    public func statfs(_ id: NodeID) throws(Errno) -> statvfs {
        try Sys.fstatvfs(stack.layers[0].root.fd)
    }

    /// `access(2)` as the kernel would decide it for the caller.
    public func access(_ id: NodeID, mask: Int32, uid: uid_t, gid: gid_t, groups: [gid_t]) throws(Errno) {
        let st = try getattr(id)
        if mask == F_OK { return }
        if mask & W_OK != 0 && isReadOnly { throw .readOnlyFileSystem }
        try Permissions.check(st, mask: mask, uid: uid, gid: gid, groups: groups)
    }
}
