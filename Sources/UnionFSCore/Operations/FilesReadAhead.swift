import Glibc
import SystemPackage

/// Reading ahead the small files of a directory that a program reads one after another (`tar`,
/// `cp -r`, `grep -r`): the bridge stores each small lower file in the kernel's page cache at its
/// open (`storingLowerData`), which on a cold cache means the open waits for the disk. Once a
/// second file of one directory is stored so, the files listed after it are stored ahead on
/// another thread, so the reader's opens find them cached, and its work overlaps the disk's.
extension UnionFileSystem {
    /// Called after the small file `id` was stored in the kernel's page cache at its open.
    /// Returns its directory and its name there when this is the second file of that directory
    /// stored so, once per directory node: the reader's next files are worth reading ahead
    /// (`filesAhead`). A directory with one file read stays cold: one `cat` reads one file.
    package func readAheadStart(after id: NodeID) -> (directory: NodeID, name: Name)? {
        guard let n = nodes.get(id), let (parent, name) = n.state.withLock({ s -> (Node, Name)? in
            guard let p = s.parent, let name = s.name else { return nil }
            return (p, name)
        }) else { return nil }
        let starts = parent.state.withLock { s -> Bool in
            if s.flags.contains(.readAhead) { return false }
            if s.flags.contains(.oneFileStored) {
                s.flags.insert(.readAhead)
                return true
            }
            s.flags.insert(.oneFileStored)
            return false
        }
        return starts ? (parent.id, name) : nil
    }

    /// Called when a reader reached the end of the listing of the directory `id`. True when
    /// its files are worth reading ahead from the first, once per directory node: its parent
    /// is being read ahead, so the reader goes through the tree (`tar`, `cp -r`, `grep -r`),
    /// and it lists a subdirectory to read the files in it next.
    package func readAheadStart(listed id: NodeID) -> Bool {
        guard let n = nodes.get(id), let parent = n.state.withLock({ $0.parent }),
              parent.state.withLock({ $0.flags.contains(.readAhead) }) else { return false }
        return n.state.withLock { s in
            if s.flags.contains(.readAhead) { return false }
            s.flags.insert(.readAhead)
            return true
        }
    }

    /// The files listed after `name` (all, for nil) in the directory `dir`, in listing order
    /// (the order a reader of the listing meets them), worth storing ahead: regular files of 1
    /// to `maxSize` bytes with one link, whose topmost occurrence is in a lower layer (lower files never
    /// change under a mount), that the kernel knows (a readdirplus or lookup made their node)
    /// under that name and that were not stored yet. At most `limit` files (found among the next
    /// `4 * limit` entries) and `budget` bytes (reached with the file that passes it).
    /// Takes the directory's listing afresh (the reader's was dropped at its end), so it is
    /// for a background thread.
    package func filesAhead(after name: Name?, in dir: NodeID, maxSize: Int, limit: Int, budget: Int) throws(Errno) -> [NodeID] {
        let d = try node(dir)
        let layers = try d.directoryLayers()
        let (entries, offsets) = try stack.orderedListing(of: layers, after: nil)
        // In offset order, an entry's offset being its name's cookie: start past the name's.
        var i = ListingOrder.start(after: name.map { ListingOrder.cookie($0) } ?? Int64.min, in: offsets)
        var found: [NodeID] = []
        var bytes = 0
        // Entries looked at, at most: each costs a probe, and a large directory of other files
        // (empty, large, upper) would otherwise be probed whole for nothing.
        let end = min(entries.count, i + 4 * limit)
        while i < end && found.count < limit && bytes < budget {
            let e = entries[i]
            i += 1
            guard e.type == UInt8(DT_REG) || e.type == UInt8(DT_UNKNOWN),
                  let dl = stack.listedPart(e, in: layers), !stack.layers[dl.layer].isUpper else { continue }
            let picked: NodeID? = try? e.name.withFileName { (n) throws(Errno) -> NodeID? in
                guard let st = try stack.probeListed(n, in: dl), st.st_mode & S_IFMT == S_IFREG,
                      st.st_size > 0, st.st_size <= maxSize, st.st_nlink == 1 else { return nil }
                let id = stack.nodeID(of: ResolvedEntry(stat: st, topLayer: dl.layer, parentDir: dl.dir, layers: []),
                                      parent: dir, name: n)
                guard let child = nodes.get(id), child.state.withLock({ s in
                    s.topLayer == dl.layer && !s.flags.contains(.lowerDataStored) && s.isNamed(n, in: d)
                }) else { return nil }
                bytes += Int(st.st_size)
                return id
            }
            if let picked { found.append(picked) }
        }
        return found
    }

    /// Asks the kernel to start reading the lower file of `id` into its page cache, without
    /// waiting: the store of the files before it then overlaps the disk's work on this one.
    package func startReadingLowerData(_ id: NodeID) {
        guard mayStoreLowerData(id), let n = nodes.get(id), isReadOnly || !n.isInUpper(stack) else { return }
        do throws(Errno) {
            let fd = try openOwn(n, flags: O_RDONLY)
            try Sys.willNeed(fd.rawValue)
        } catch {}  // only advice: the store reads the file anyway
    }
}
