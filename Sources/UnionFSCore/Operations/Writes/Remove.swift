import Glibc
import SystemPackage

extension UnionFileSystem {
    /// `unlink`: an upper file goes; where a lower layer still shows the name, a whiteout takes
    /// its place in the same step (docs/SEMANTICS.md §3).
    public func unlink(parent: UInt64, name: UnsafePointer<CChar>) throws(Errno) {
        if isReadOnly { throw .readOnlyFileSystem }
        let p = try node(parent)
        defer { p.listingChanged() }
        let entry = try stack.resolve(name, in: p.directoryLayers())
        if entry.isDirectory { throw .isDirectory }
        let upper = try upperDirectory(of: p)
        let needsWhiteout = lowerShows(name, in: try p.directoryLayers())
        let current = upperEntry(name, in: upper)
        if case .entry(let st) = current {
            if st.st_nlink <= 1 {
                detachIfHeld(name, st, in: upper)
                stack.inodes.forgetCopyUp(FileID(st))
            } else {
                renameNodeToOtherLink(st, removed: name, in: upper)
            }
        }
        if needsWhiteout {
            try whiteOut(name, in: upper, current: current)
        } else if case .entry(let st) = current {
            try removeUpper(name, in: upper, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
        }
    }

    /// `rmdir`: the directory must be empty after merging (only whiteouts left below it).
    public func rmdir(parent: UInt64, name: UnsafePointer<CChar>) throws(Errno) {
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
    func whiteOut(_ name: UnsafePointer<CChar>, in upper: LayerDir, current: UpperEntry) throws(Errno) {
        switch current {
        case .whiteout:
            return
        case .absent:
            try Sys.mknodat(upper.fd, name, S_IFCHR, 0)
        case .entry(let st):
            let staging = stack.staging!
            let temp = Staging.temporaryName()
            try temp.withCString { (t) throws(Errno) in
                try Sys.mknodat(staging.fd, t, S_IFCHR, 0)
                if st.st_mode & S_IFMT == S_IFDIR {
                    try Sys.renameat2(staging.fd, t, upper.fd, name, Sys.renameExchange)
                    try Staging.removeTree(in: staging, t)
                } else {
                    do throws(Errno) { try Sys.renameat2(staging.fd, t, upper.fd, name, 0) } catch {
                        try? Sys.unlinkat(staging.fd, t, 0)
                        throw error
                    }
                }
            }
        }
    }

    /// Removes an upper entry that hides nothing. A directory (which may hold whiteouts) is first
    /// moved to the workdir, so a crash never leaves it half emptied with lower entries showing.
    func removeUpper(_ name: UnsafePointer<CChar>, in upper: LayerDir, isDirectory: Bool) throws(Errno) {
        if isDirectory {
            let staging = stack.staging!
            let temp = Staging.temporaryName()
            try temp.withCString { (t) throws(Errno) in
                try Sys.renameat2(upper.fd, name, staging.fd, t, Sys.renameNoReplace)
                try Staging.removeTree(in: staging, t)
            }
        } else {
            try Sys.unlinkat(upper.fd, name, 0)
        }
    }

    /// The last name of the upper file `name` is about to go: if the kernel holds its node (an
    /// open file), keep the file itself reachable for `getattr` (nlink 0 once it is gone).
    func detachIfHeld(_ name: UnsafePointer<CChar>, _ st: stat, in upper: LayerDir) {
        guard let n = nodes.get(stack.inodes.reported(FileID(st))),
              let fd = try? upper.openFile(name, O_PATH) else { return }
        n.state.withLock { $0.unlinked = OwnedDescriptor(fd) }
    }

    /// The directory `entry` is about to go: if the kernel holds its node (a working directory,
    /// an open handle), the node can no longer be found by name, so it keeps its layer
    /// directories (`DescriptorBudget`) and answers from them until the kernel forgets it.
    func keepDescriptorsIfHeld(_ entry: ResolvedEntry) {
        guard let n = nodes.get(stack.inodes.reported(FileID(entry.stat))) else { return }
        n.state.withLock { $0.keepsDescriptors = true }
        _ = try? n.location()  // held again if a sweep took it, and now kept
    }

    /// When one name of a hard-linked file goes, the node (keyed by inode) may still be known by
    /// that name: point it at another link in the same directory, if there is one.
    private func renameNodeToOtherLink(_ st: stat, removed: UnsafePointer<CChar>, in upper: LayerDir) {
        let id = stack.inodes.reported(FileID(st))
        guard let n = nodes.get(id), let current = n.currentName,
              current.withCString({ strcmp($0, removed) == 0 }) else { return }
        var other: Name? = nil
        try? Sys.forEachEntry(in: upper.fd) { e in
            if other == nil && e.ino == UInt64(st.st_ino) && strcmp(e.cName, removed) != 0 {
                other = Name(bytes: e.name)
            }
        }
        if let other { n.state.withLock { $0.name = other } }
    }
}
