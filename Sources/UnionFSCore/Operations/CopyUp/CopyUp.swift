import Glibc
import SystemPackage

/// How much of a node a change needs in the upper.
enum CopyUpExtent {
    /// The entry itself: a file with its data, a directory as metadata and xattrs only (never
    /// its children), anything else as itself.
    case entry
    /// The entry, a regular file without its data: the change truncates it to zero anyway.
    case truncated
    /// The entry and, for a directory with lower content, everything below it, so that one
    /// `rename` in the upper can move it.
    case subtree
}

/// Copy-up: the one entry point every trigger calls, and the policy it follows
/// (docs/SEMANTICS.md §3).
///
/// When: before a change of a lower entry. Open for write or with `O_TRUNC` (`.truncated`
/// then: no data), `chmod`, `chown`, `utimens`, `truncate` (`setattr`), `setxattr` and
/// `removexattr`, the source of `link`, every directory in which something is created, removed
/// or renamed (`upperDirectory`), and the source of `rename` (`.subtree`). Never on read, stat
/// or readdir.
///
/// How: ancestors first, top down, each with its lower metadata; each node under its own
/// `copyUpLock`, so racing writers copy it once (a parent's lock is taken and released before
/// the child's; only `.subtree` holds a directory's lock while it copies its children, so the
/// order is always ancestor before descendant: docs/ARCHITECTURE.md §3). Each copy is a
/// `StagedCopy`, built in the workdir and landed with one `rename`; its xattrs are all but the
/// overlay's own (`OverlayXattrs`, the rule getxattr and listxattr follow too).
extension UnionFileSystem {
    /// Makes `node` (and as much below it as `extent` says) exist in the upper.
    func copyUp(_ node: Node, _ extent: CopyUpExtent = .entry) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        if case .subtree = extent { return try copyUpSubtree(node) }
        if node.isInUpper(stack) { return }
        guard let parent = node.parent else { return }  // the root's layer 0 is the upper
        let upperParent = try upperDirectory(of: parent)
        try node.copyUpLock.withLock { (_) throws(Errno) in
            if node.isInUpper(stack) { return }
            let (entry, name) = try node.location()
            guard let name else { return }
            let truncate: Bool
            if case .truncated = extent { truncate = true } else { truncate = false }
            let (st, upperDir) = try name.withFileName { (n) throws(Errno) -> (stat, LayerDir?) in
                let st = try stagedCopy.copy(entry, name: n, into: upperParent, truncate: truncate)
                return (st, entry.isDirectory ? try upperParent.openChild(n) : nil)
            }
            stack.inodes.recordCopyUp(FileID(st), reports: node.id.rawValue)
            node.state.withLock { s in
                s.update(topLayer: 0) { e in
                    if let upperDir {
                        e.layers.insert(DirectoryPart(layer: 0, dir: upperDir, holdsXattrWhiteouts: false), at: 0)
                    } else {
                        e.parentDir = upperParent
                    }
                    e.topLayer = 0
                }
            }
        }
    }

    /// The copy-up mechanics for this mount.
    var stagedCopy: StagedCopy {
        StagedCopy(stack: stack, staging: stack.staging!, sync: !options.volatile)
    }

    /// `.subtree`: makes a node live entirely in the upper, so that one `rename` in the upper
    /// moves it: a file is copied up; a directory with lower content has its upper part
    /// completed in place.
    ///
    /// Every entry the lower layers contribute, at any depth, is copied up (staged and landed as
    /// any copy-up) into the upper directories that already exist; then each directory is marked
    /// opaque and its whiteouts, now redundant, are removed. Each step leaves the merged view as
    /// it was, so a crash at any point leaves a valid upper. Entries already in the upper keep
    /// their inodes: open files, hard links, and files created meanwhile in subdirectories (the
    /// kernel does not lock those during the rename) all stay. No `redirect` xattr is written,
    /// so the upper still mounts under the kernel. With `rename_exdev`: `EXDEV` instead.
    private func copyUpSubtree(_ n: Node) throws(Errno) {
        let (entry, _) = try n.location()
        guard entry.isDirectory else { return try copyUp(n) }
        guard entry.layers.contains(where: { $0.layer != 0 }) else { return }
        if options.renameDirectoriesEXDEV { throw .improperLink }
        try copyUp(n)
        try n.copyUpLock.withLock { (_) throws(Errno) in
            let layers = try n.directoryLayers()
            guard layers.count > 1 else { return }
            try absorbLower(layers, id: n.id)
            n.state.withLock { $0.update(topLayer: 0) { $0.layers = [layers[0]] } }
        }
    }

    /// Copies into `layers[0]` (the upper part of the merged directory node `dirID`) every
    /// entry only lower layers hold, recursing into merged subdirectories, then marks it opaque
    /// and removes its whiteouts.
    private func absorbLower(_ layers: [DirectoryPart], id dirID: NodeID) throws(Errno) {
        let upper = layers[0].dir
        for child in try stack.mergedListing(of: layers) {
            try child.name.withFileName { (c) throws(Errno) in
                guard var ce = try? stack.resolve(c, in: layers) else { return }  // gone meanwhile
                let id = stack.nodeID(of: ce, parent: dirID, name: c)
                let held = nodes.get(id)
                if ce.topLayer != 0 {
                    if let held {
                        try copyUp(held)  // under its lock: racing writers copy it once
                    } else {
                        do throws(Errno) {
                            let st = try stagedCopy.copy(HeldEntry(ce), name: c, into: upper, truncate: false)
                            stack.inodes.recordCopyUp(FileID(st), reports: id.rawValue)
                        } catch .fileExists {}  // made meanwhile through the mount
                    }
                    guard let again = try? stack.resolve(c, in: layers) else { return }
                    ce = again
                }
                if ce.isDirectory && ce.layers.count > 1 {
                    try absorbLower(ce.layers, id: id)
                    held?.state.withLock { $0.update(topLayer: 0) { $0.layers = [ce.layers[0]] } }
                }
            }
        }
        try setOpaque(upper)
        if stack.ociUpper { try ociRemoveWhiteouts(in: upper); return }
        var whiteouts: [Name] = []
        try Sys.forEachEntry(in: upper.fd) { e in
            if e.type == UInt8(DT_CHR) || e.type == UInt8(DT_UNKNOWN) { whiteouts.append(Name(bytes: e.name)) }
        }
        for w in whiteouts {
            try w.withFileName { (c) throws(Errno) in
                if case .whiteout = upperEntry(c, in: upper) { try Sys.unlinkat(upper.fd, c.cString, 0) }
            }
        }
    }
}
