import Glibc
import SystemPackage

extension UnionFileSystem {
    /// `rename` with `RENAME_NOREPLACE` or `RENAME_EXCHANGE` (other flags: `EINVAL`).
    ///
    /// The source is first made to live entirely in the upper (a file is copied up; a directory
    /// with lower content has its whole lower content copied into its upper part, which becomes
    /// opaque, see
    /// `copyUp(_:.subtree)`), then one `renameat2` in the upper moves it, leaving a whiteout at
    /// the old name (`RENAME_WHITEOUT`) when a lower layer still shows that name.
    public func rename(parent: NodeID, name: borrowing FileName, newParent: NodeID,
                       newName: borrowing FileName, flags: UInt32) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        let known = Sys.renameNoReplace | Sys.renameExchange
        guard flags & ~known == 0, flags != known else { throw .invalidArgument }
        let exchange = flags & Sys.renameExchange != 0
        let p = try node(parent), q = try node(newParent)
        defer {
            p.listingChanged()
            q.listingChanged()
        }
        try checkStorable(newName)
        let src = try stack.resolve(name, in: p.directoryLayers())
        let dst = try? stack.resolve(newName, in: q.directoryLayers())
        if flags & Sys.renameNoReplace != 0 && dst != nil { throw .fileExists }
        if exchange && dst == nil { throw .noSuchFileOrDirectory }
        let srcID = stack.nodeID(of: src, parent: p.id, name: name)
        if !exchange, let dst {
            if srcID == stack.nodeID(of: dst, parent: q.id, name: newName) { return }  // same file: nothing to do
            if src.isDirectory && !dst.isDirectory { throw .notDirectory }
            if !src.isDirectory && dst.isDirectory { throw .isDirectory }
            if dst.isDirectory {
                let listing = try stack.mergedListing(of: dst.layers)
                if !listing.isEmpty { throw .directoryNotEmpty }
            }
        }
        let upperP = try upperDirectory(of: p), upperQ = try upperDirectory(of: q)
        let srcNode = nodeOrDetached(srcID, parent: p, name: name, entry: src)
        try copyUp(srcNode, .subtree)
        var dstNode: Node? = nil
        if exchange, let dst {
            let n = nodeOrDetached(stack.nodeID(of: dst, parent: q.id, name: newName), parent: q, name: newName, entry: dst)
            try copyUp(n, .subtree)
            dstNode = n
        }
        // A directory arriving where a lower layer shows the same name must not merge with it.
        let qLayers = try q.directoryLayers(), pLayers = try p.directoryLayers()
        if src.isDirectory && lowerShows(newName, in: qLayers) { try makeOpaque(srcNode) }
        if let dstNode, dst?.isDirectory == true, lowerShows(name, in: pLayers) {
            try makeOpaque(dstNode)
        }

        if !exchange, case .entry(let st) = upperEntry(newName, in: upperQ), st.st_mode & S_IFMT != S_IFDIR {
            nameGone(newName, in: q, st, upper: upperQ)  // the replaced file may be open or linked
        }
        if !exchange, let dst, dst.isDirectory { keepDescriptorsIfHeld(dst) }
        if exchange {
            try Sys.renameat2(upperP.fd, name.cString, upperQ.fd, newName.cString, Sys.renameExchange)
        } else {
            let leaveWhiteout = lowerShows(name, in: try p.directoryLayers())
            switch upperEntry(newName, in: upperQ) {
            case .entry(let st) where st.st_mode & S_IFMT == S_IFDIR:
                // The old target may hold whiteouts, which the filesystem counts as entries:
                // exchange, then dispose of the old target at the source name.
                try Sys.renameat2(upperP.fd, name.cString, upperQ.fd, newName.cString, Sys.renameExchange)
                if leaveWhiteout {
                    try whiteOut(name, in: upperP, current: .entry(st))
                } else {
                    try removeUpper(name, in: upperP, isDirectory: true)
                }
            case .whiteout where src.isDirectory && !stack.ociUpper:
                // A directory cannot replace a non-directory: exchange with the whiteout, which
                // is then exactly the whiteout the source name needs, or goes.
                try Sys.renameat2(upperP.fd, name.cString, upperQ.fd, newName.cString, Sys.renameExchange)
                if !leaveWhiteout { try Sys.unlinkat(upperP.fd, name.cString, 0) }
            default:
                try moveLeavingWhiteout(upperP, name, upperQ, newName, whiteout: leaveWhiteout)
            }
        }
        let srcName = Name(name), dstName = Name(newName)
        relocate(srcNode, from: p, srcName, to: q, name: dstName, upperParent: upperQ)
        if let dstNode { relocate(dstNode, from: q, dstName, to: p, name: srcName, upperParent: upperP) }
    }

    /// `renameat2` that leaves a whiteout at the source when asked. Where the filesystem lacks
    /// `RENAME_WHITEOUT`, the whiteout is made right after the move.
    private func moveLeavingWhiteout(_ from: LayerDir, _ name: borrowing FileName, _ to: LayerDir,
                                     _ newName: borrowing FileName, whiteout: Bool) throws(Errno) {
        if stack.ociUpper { try ociMove(from, name, to, newName, whiteout: whiteout); return }
        guard whiteout else {
            try Sys.renameat2(from.fd, name.cString, to.fd, newName.cString, 0)
            return
        }
        do {
            try Sys.renameat2(from.fd, name.cString, to.fd, newName.cString, Sys.renameWhiteout)
        } catch .invalidArgument {
            try Sys.renameat2(from.fd, name.cString, to.fd, newName.cString, 0)
            try Sys.mknodat(from.fd, name.cString, S_IFCHR, 0)
        }
    }

    /// Points a moved node at its new place in the upper; when the name moved was another name
    /// of a hard-linked file (not the one the node uses), only that name is updated.
    private func relocate(_ n: Node, from old: Node, _ oldName: Name, to parent: Node, name: Name,
                          upperParent: LayerDir) {
        n.state.withLock { s in
            if s.renameOther(oldName, in: old, to: name, in: parent) { return }
            s.parent = parent
            s.name = name
            s.update(topLayer: 0) { e in
                e.parentDir = upperParent
                e.topLayer = 0
            }
        }
    }

    /// Sets the opaque marker on a directory node's upper directory.
    func makeOpaque(_ n: Node) throws(Errno) {
        let layers = try n.directoryLayers()
        guard layers[0].layer == 0 else { throw .ioError }
        try setOpaque(layers[0].dir)
    }
}
