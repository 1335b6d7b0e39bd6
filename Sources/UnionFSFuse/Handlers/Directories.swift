import Glibc
import SystemPackage
import UnionFSCore

/// Directory operations (see `Files.swift` for the rules every handler keeps).
extension FuseConnection {
    func opendir(_ r: consuming Reply, node: NodeID) {
        // Readdir answers from the directory's shared listing (`sharedListing`), so an open
        // directory needs no state: let the kernel open them itself.
        if opensDirectoriesItself.load(ordering: .relaxed) {
            r.error(.noFunction)
            return
        }
        do throws(Errno) {
            guard try fileSystem.getattr(node).st_mode & S_IFMT == S_IFDIR else { throw .notDirectory }
            // Let the kernel keep the listing in its page cache. It fills that cache from
            // whichever handle reads at its end and takes offsets as valid across handles,
            // which ours are (name hashes), and each reply shows the directory as it is then
            // (`DirectoryHandle`); a change through the mount makes the kernel drop the cache
            // at the next listing from the start.
            r.open(OpenReply(fh: 0, flags: OpenReplyFlag.cacheDir | OpenReplyFlag.keepCache))
        } catch { r.error(error) }
    }

    func releasedir(_ r: consuming Reply) {
        r.ok()  // nothing to free: see opendir
    }

    func fsyncdir(_ r: consuming Reply, node: NodeID) {
        r.ok { () throws(Errno) in try fileSystem.fsyncdir(node) }
    }

    /// One readdir(plus) reply of at most `size` bytes from the directory's shared listing,
    /// after `offset`, in the kernel's `fuse_dirent`/`fuse_direntplus` records.
    func readdir(_ r: consuming Reply, node: NodeID, size: Int, offset: Int64, plus: Bool) {
        let fs = fileSystem
        let handle: DirectoryHandle
        let listing: DirectoryHandle.Listing
        do throws(Errno) {
            guard offset >= 0 else { throw .invalidArgument }
            handle = try fs.sharedListing(node)
            listing = try handle.currentListing()
        } catch { r.error(error); return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 8), alignment: 8)
        defer { buffer.deallocate() }
        var w = WireWriter(buffer.baseAddress!)
        let entries = listing.entries
        let current = plus && fs.listingIsCurrent(listing, of: handle)
        let first = listing.start(after: offset)
        var index = first
        // The reader asks once more past the last entry, for the empty reply that ends the
        // listing: the listing is done with then. A subdirectory of a directory being read
        // ahead is read ahead too, once listed (`FilesReadAhead`).
        if index == entries.count {
            fs.listingRead(handle)
            if fs.readAheadStart(listed: node) { readAhead.submit(node, after: nil) }
        }
        // The attributes `ListingProber` found meanwhile, usable while the listing is current.
        let probed = plus ? handle.takeProbes(listing, from: index) : []
        var usedProbes: UInt64 = 0
        while index < entries.count {
            let e = entries[index]
            let next = listing.offsets[index]
            let fits: Bool = e.name.withBytes { name in
                let record = ReplyLayout.direntSize(nameLength: name.count) + (plus ? WireSize.entryOut : 0)
                // Measured before the lookup: a lookup counted for an entry that does not fit
                // would leak.
                guard w.offset + record <= size else { return false }
                var shownIno = e.ino
                var type = UInt32(e.type)
                if plus {
                    let ready = current && index - first < probed.count ? probed[probed.startIndex + index - first] : nil
                    if ready != nil { usedProbes += 1 }
                    if index >= 2, let found = try? fs.lookup(listed: e, in: handle, layers: listing.layers,
                                                               current: current, probed: ready) {
                        shownIno = UInt64(found.attributes.st_ino)
                        type = UInt32(found.attributes.st_mode & S_IFMT) >> 12
                        ReplyLayout.entry(node: found.node.rawValue, found.attributes, timeout: timeout, &w)
                    } else {
                        var st = stat()
                        st.st_ino = ino_t(shownIno)
                        st.st_mode = mode_t(e.type) << 12
                        ReplyLayout.entry(node: 0, st, timeout: 0, &w)
                    }
                }
                ReplyLayout.dirent(ino: shownIno, next: UInt64(bitPattern: next), type: type, name: name, &w)
                return true
            }
            if !fits { break }
            index += 1
        }
        if usedProbes > 0 { prober.stats.probedAhead.add(usedProbes, ordering: .relaxed) }
        // The next chunk is most likely as long as this one: probe it while the kernel and
        // the reader take this one in. Handed over before the reply goes, so the prober is
        // awake by the time the reader is (on io_uring the reply goes at the worker's next
        // wait anyway).
        if plus && current && index < entries.count && index > first {
            prober.submit(handle, listing, index..<min(entries.count, index + (index - first)))
        }
        r.bytes(UnsafeRawBufferPointer(rebasing: buffer[0..<w.offset]))
    }
}
