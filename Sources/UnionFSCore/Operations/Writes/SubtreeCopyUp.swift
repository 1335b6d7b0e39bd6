import Glibc
import SystemPackage

extension UnionFileSystem {
    /// Makes a node live entirely in the upper, so that one `rename` in the upper moves it: a
    /// file is copied up; a directory with lower content has its upper part completed in place.
    ///
    /// Every entry the lower layers contribute, at any depth, is copied up (staged and landed as
    /// any copy-up) into the upper directories that already exist; then each directory is marked
    /// opaque and its whiteouts, now redundant, are removed. Each step leaves the merged view as
    /// it was, so a crash at any point leaves a valid upper. Entries already in the upper keep
    /// their inodes: open files, hard links, and files created meanwhile in subdirectories (the
    /// kernel does not lock those during the rename) all stay. No `redirect` xattr is written,
    /// so the upper still mounts under the kernel.
    func moveEntirelyToUpper(_ n: Node) throws(Errno) {
        let (entry, _) = try n.location()
        guard entry.isDirectory else { try copyUp(n); return }
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
    private func absorbLower(_ layers: [DirLayer], id dirID: NodeID) throws(Errno) {
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
                            let st = try copier.copy(ce, name: c, into: upper, truncate: false)
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
