import Glibc
import SystemPackage

extension UnionFileSystem {
    /// `unlink`: an upper file goes; where a lower layer still shows the name, a whiteout takes
    /// its place in the same step (docs/SEMANTICS.md §3).
    public func unlink(parent: NodeID, name: borrowing FileName) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        let p = try node(parent)
        defer { p.listingChanged() }
        let entry = try stack.resolve(name, in: p.directoryLayers())
        if entry.isDirectory { throw .isDirectory }
        let upper = try upperDirectory(of: p)
        let needsWhiteout = lowerShows(name, in: try p.directoryLayers())
        let current = upperEntry(name, in: upper)
        if case .entry(let st) = current {
            nameGone(name, in: p, st, upper: upper)
            if st.st_nlink <= 1 { stack.inodes.forgetCopyUp(FileID(st)) }
        }
        if needsWhiteout {
            try whiteOut(name, in: upper, current: current)
        } else if case .entry(let st) = current {
            try removeUpper(name, in: upper, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
        }
    }

    /// `rmdir`: the directory must be empty after merging (only whiteouts left below it).
    public func rmdir(parent: NodeID, name: borrowing FileName) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        let p = try node(parent)
        defer { p.listingChanged() }
        let entry = try stack.resolve(name, in: p.directoryLayers())
        guard entry.isDirectory else { throw .notDirectory }
        guard try stack.mergedListing(of: entry.layers).isEmpty else { throw .directoryNotEmpty }
        let upper = try upperDirectory(of: p)
        let needsWhiteout = lowerShows(name, in: try p.directoryLayers())
        let current = upperEntry(name, in: upper)
        keepDescriptorsIfHeld(entry)
        if needsWhiteout {
            try whiteOut(name, in: upper, current: current)
        } else if case .entry = current {
            try removeUpper(name, in: upper, isDirectory: true)
        }
    }

    /// Puts a whiteout at `name` in `upper`, replacing in one step whatever the upper holds there.
    /// A directory is exchanged with a whiteout built in the workdir and then removed from there.
    func whiteOut(_ name: borrowing FileName, in upper: LayerDir, current: UpperEntry) throws(Errno) {
        if stack.ociUpper { try ociWhiteOut(name, in: upper, current: current); return }
        switch current {
        case .whiteout:
            return
        case .absent:
            try Sys.mknodat(upper.fd, name.cString, S_IFCHR, 0)
        case .entry(let st):
            let staging = stack.staging!
            try Staging.withTemporaryName { (t) throws(Errno) in
                try Sys.mknodat(staging.fd, t.cString, S_IFCHR, 0)
                if st.st_mode & S_IFMT == S_IFDIR {
                    try Sys.renameat2(staging.fd, t.cString, upper.fd, name.cString, Sys.renameExchange)
                    try Staging.removeTree(in: staging, t)
                } else {
                    do throws(Errno) { try Sys.renameat2(staging.fd, t.cString, upper.fd, name.cString, 0) } catch {
                        try? Sys.unlinkat(staging.fd, t.cString, 0)
                        throw error
                    }
                }
            }
        }
    }

    /// Removes an upper entry that hides nothing. A directory (which may hold whiteouts) is first
    /// moved to the workdir, so a crash never leaves it half emptied with lower entries showing.
    func removeUpper(_ name: borrowing FileName, in upper: LayerDir, isDirectory: Bool) throws(Errno) {
        if isDirectory {
            let staging = stack.staging!
            try Staging.withTemporaryName { (t) throws(Errno) in
                try Sys.renameat2(upper.fd, name.cString, staging.fd, t.cString, Sys.renameNoReplace)
                try Staging.removeTree(in: staging, t)
            }
        } else {
            try Sys.unlinkat(upper.fd, name.cString, 0)
        }
    }

    /// The directory `entry` is about to go: if the kernel holds its node (a working directory,
    /// an open handle), the node can no longer be found by name, so it keeps its layer
    /// directories (`DescriptorBudget`) and answers from them until the kernel forgets it.
    func keepDescriptorsIfHeld(_ entry: ResolvedEntry) {
        guard let n = nodes.get(NodeID(stack.inodes.reported(FileID(entry.stat)))) else { return }
        n.state.withLock { $0.flags.insert(.keepsDescriptors) }
        _ = try? n.location()  // held again if a sweep took it, and now kept
    }

    /// The name `name` in the directory node `p` of the upper non-directory `st` is about to go
    /// (unlink, or a rename over it). If the kernel holds the file's node and knows it by that
    /// name, the node moves to another name it was found under, so that name keeps working
    /// (issue 13: a hard link removed in another directory made the first name unreachable).
    /// With no other name known (the last link, or links the kernel never looked up), the node
    /// keeps an `O_PATH` descriptor of the file itself: attributes then come from the file
    /// (nlink as it is), and opens reopen it (`ownFile`).
    func nameGone(_ name: borrowing FileName, in p: Node, _ st: stat, upper: LayerDir) {
        guard st.st_mode & S_IFMT != S_IFDIR, let n = nodes.get(NodeID(stack.inodes.reported(FileID(st)))) else { return }
        let gone = Name(name)
        for _ in 0..<8 {
            // Another name going: forget it, in the same lock as the check, so that a
            // concurrent move of the node to that very name cannot slip in between.
            let others = n.state.withLock { s -> [Node.NodeName]? in
                guard s.isNamed(gone, in: p) else {
                    s.otherNames.removeAll { $0.is(p, gone) }
                    return nil
                }
                return s.otherNames
            }
            guard let others else { return }
            // The other name's upper directory, found without holding the node's lock (a
            // parent's lock comes first).
            var next: (Node.NodeName, LayerDir)? = nil
            for o in others where st.st_nlink > 1 {
                if let layers = try? o.parent.directoryLayers(), layers[0].layer == 0 {
                    next = (o, layers[0].dir)
                    break
                }
            }
            guard let (other, dir) = next else {
                guard let fd = try? upper.openFile(name, O_PATH) else { return }
                let held = SharedDescriptor(fd)
                n.state.withLock { s in
                    s.otherNames.removeAll()
                    s.unlinked = held
                }
                return
            }
            let moved = n.state.withLock { s -> Bool in
                // Moved meanwhile, or that other name went or moved meanwhile: again.
                guard s.isNamed(gone, in: p), s.otherNames.contains(where: { $0.is(other.parent, other.name) }) else { return false }
                s.otherNames.removeAll { $0.is(other.parent, other.name) }
                s.parent = other.parent
                s.name = other.name
                s.update(topLayer: 0) { e in e.parentDir = dir }
                return true
            }
            if moved { return }
        }
    }
}
