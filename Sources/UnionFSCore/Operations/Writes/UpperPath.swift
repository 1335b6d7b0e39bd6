import Glibc
import SystemPackage

extension UnionFileSystem {
    /// The copy-up engine for this mount.
    var copier: CopyUp {
        CopyUp(stack: stack, staging: stack.staging!, sync: !options.volatile)
    }

    /// Makes sure `node` exists in the upper, copying its ancestors first (top down), each
    /// under its own `copyUpLock` so that racing writers copy a file once.
    func copyUp(_ node: Node, truncate: Bool = false) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        if node.isInUpper(stack) { return }
        guard let parent = node.parent else { return }  // the root's layer 0 is the upper
        let upperParent = try upperDirectory(of: parent)
        try node.copyUpLock.withLock { (_) throws(Errno) in
            if node.isInUpper(stack) { return }
            let (entry, name) = try node.location()
            guard let name else { return }
            let (st, upperDir) = try name.withFileName { (n) throws(Errno) -> (stat, LayerDir?) in
                let st = try copier.copy(entry, name: n, into: upperParent, truncate: truncate)
                return (st, entry.isDirectory ? try upperParent.openChild(n) : nil)
            }
            stack.inodes.recordCopyUp(FileID(st), reports: node.id.rawValue)
            node.state.withLock { s in
                s.update(topLayer: 0) { e in
                    if let upperDir {
                        e.layers.insert(DirLayer(layer: 0, dir: upperDir, holdsXattrWhiteouts: false), at: 0)
                    } else {
                        e.parentDir = upperParent
                    }
                    e.topLayer = 0
                    e.stat = st
                }
            }
        }
    }

    /// The upper directory of a merged directory node, copied up first if needed.
    func upperDirectory(of dir: Node) throws(Errno) -> LayerDir {
        try copyUp(dir)
        let layers = try dir.directoryLayers()
        guard layers[0].layer == 0 else { throw .ioError }
        return layers[0].dir
    }

    /// True when a lower layer of the directory `layers` (everything but the upper) still shows
    /// `name`: removing or moving it away from the upper must then leave a whiteout.
    func lowerShows(_ name: borrowing FileName, in layers: [DirLayer]) -> Bool {
        let lower = layers.filter { $0.layer != 0 }
        guard !lower.isEmpty else { return false }
        return (try? stack.resolve(name, in: lower)) != nil
    }

    /// Marks the upper directory `dir` opaque: `<ns>.overlay.opaque` = "y" (the value lives in
    /// static memory, so the buffer cannot dangle).
    func setOpaque(_ dir: LayerDir) throws(Errno) {
        let y: StaticString = "y"
        try stack.names.opaque.withUnsafeBufferPointer { (n) throws(Errno) in
            try Sys.fsetxattr(dir.fd, n.baseAddress!, UnsafeRawBufferPointer(start: y.utf8Start, count: 1), 0)
        }
    }

    /// What the upper directory holds under `name`.
    func upperEntry(_ name: borrowing FileName, in upper: LayerDir) -> UpperEntry {
        guard let st = try? upper.stat(name) else { return .absent }
        if st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 { return .whiteout }
        return .entry(st)
    }

    /// The node for `id` when the kernel holds it, else a detached one for this request only.
    func nodeOrDetached(_ id: NodeID, parent: Node, name: borrowing FileName, entry: ResolvedEntry) -> Node {
        nodes.get(id) ?? Node(id: id, stack: stack, parent: parent, name: Name(name), entry: entry)
    }
}

/// An upper directory's entry under one name.
enum UpperEntry {
    case absent
    case whiteout
    case entry(stat)
}
