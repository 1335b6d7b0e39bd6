import CFuse3
import Glibc
import SystemPackage
import UnionFSCore

/// The libfuse low-level operations table.
///
/// Each entry is a non-capturing `@convention(c)` closure in a library file (closures in
/// `main.swift` are MainActor-isolated and trap on libfuse's worker threads). Each wraps the raw
/// request in a `Request`, which must be consumed by exactly one reply, calls one method of
/// `UnionFileSystem`, and turns its result or `Errno` into that reply. No Swift error escapes.
enum Bridge {
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn, let userdata else { return }
            Bridge.negotiate(conn, Unmanaged<FuseConnection>.fromOpaque(userdata).takeUnretainedValue())
        }
        ops.lookup = { req, parent, name in
            let r = Request(req!)
            let fs = r.fileSystem
            do throws(Errno) {
                let entry = try FileName.validating(name!) { (n) throws(Errno) in
                    try fs.lookup(parent: NodeID(parent), name: n)
                }
                r.reply(entry: fuse_entry_param(entry, timeout: fs.options.timeout))
            } catch .noSuchFileOrDirectory {
                // A negative entry (node id 0) the kernel may cache: names appear only through
                // this mount, and the kernel drops the negative entry when it creates one.
                var negative = fuse_entry_param()
                negative.entry_timeout = fs.options.timeout
                r.reply(entry: negative)
            } catch { r.reply(error: error) }
        }
        ops.forget = { req, ino, count in
            let r = Request(req!)
            r.fileSystem.forget(NodeID(ino), count: count)
            r.replyNone()
        }
        ops.forget_multi = { req, count, forgets in
            let r = Request(req!)
            let fs = r.fileSystem
            if let forgets {
                for i in 0..<count { fs.forget(NodeID(forgets[i].ino), count: forgets[i].nlookup) }
            }
            r.replyNone()
        }
        ops.getattr = { req, ino, fi in
            let r = Request(req!)
            let fs = r.fileSystem
            do throws(Errno) {
                let st: stat
                if let fi, fi.pointee.fh & Bridge.lowerHandle == 0 {
                    st = try fs.getattr(NodeID(ino), openFile: Int32(truncatingIfNeeded: fi.pointee.fh))
                } else {
                    st = try fs.getattr(NodeID(ino))
                }
                r.reply(attributes: st, timeout: fs.options.timeout)
            } catch { r.reply(error: error) }
        }
        ops.readlink = { req, ino in
            let r = Request(req!)
            do throws(Errno) {
                let link = try r.fileSystem.readlink(NodeID(ino))
                r.reply(link: link)
            } catch { r.reply(error: error) }
        }
        ops.opendir = { req, ino, fi in
            let r = Request(req!)
            let fs = r.fileSystem
            // Readdir answers from the directory's shared listing (`sharedListing`), so an
            // open directory needs no state: let the kernel open them itself.
            if r.connection.opensDirectoriesItself.load(ordering: .relaxed) {
                r.reply(error: .noFunction)
                return
            }
            do throws(Errno) {
                guard try fs.getattr(NodeID(ino)).st_mode & S_IFMT == S_IFDIR else { throw .notDirectory }
                var info = fi!.pointee
                info.fh = 0
                // Let the kernel keep the listing in its page cache. It fills that cache from
                // whichever handle reads at its end and takes offsets as valid across handles,
                // which ours are (name hashes), and each reply shows the directory as it is
                // then (`DirectoryHandle`); a change through the mount makes the kernel
                // drop the cache at the next listing from the start.
                info.cache_readdir = 1
                info.keep_cache = 1
                r.reply(open: info)
            } catch { r.reply(error: error) }
        }
        ops.readdir = { req, ino, size, off, _ in
            Bridge.readdir(Request(req!), NodeID(ino), size: size, offset: off, plus: false)
        }
        ops.readdirplus = { req, ino, size, off, _ in
            Bridge.readdir(Request(req!), NodeID(ino), size: size, offset: off, plus: true)
        }
        ops.releasedir = { req, _, _ in
            Request(req!).replyOK()  // nothing to free: see opendir
        }
        ops.open = { req, ino, fi in
            let r = Request(req!)
            do throws(Errno) {
                var info = fi!.pointee
                let opened = try r.fileSystem.openHandle(NodeID(ino), flags: info.flags)
                if info.flags & O_TRUNC != 0 {
                    // On failure the descriptor closes as `opened` goes.
                    try r.fileSystem.clearSetID(NodeID(ino), caller: r.context.uid, inGroup: r.groupCheck)
                }
                let lower = opened.inLowerLayer
                info.fh = Bridge.handle(opened.takeDescriptor().take(), flags: info.flags, lower: lower)
                info.keep_cache = 1
                // Nothing to flush for a file opened read-only, or on an upper whose close
                // cannot fail: spare the kernel a round trip on every close.
                if info.flags & O_ACCMODE == O_RDONLY || !r.fileSystem.closeCanFail { info.noflush = 1 }
                r.reply(open: info)
            } catch { r.reply(error: error) }
        }
        ops.read = { req, ino, size, off, fi in
            let r = Request(req!)
            let fh = fi!.pointee.fh
            let (fd, owner) = Bridge.readDescriptor(r.fileSystem, NodeID(ino), fh)
            if fh & Bridge.directHandle != 0 && owner == nil {
                Bridge.readDirect(r, fd, size: size, at: off)
                return
            }
            r.reply(dataFrom: fd, size: size, offset: Int64(off))
            withExtendedLifetime(owner) {}  // the upper copy's descriptor stays open until here
        }
        ops.release = { req, _, fi in
            let r = Request(req!)
            r.fileSystem.release(Descriptor(adopting: Int32(truncatingIfNeeded: fi!.pointee.fh)))
            r.replyOK()
        }
        ops.statfs = { req, ino in
            let r = Request(req!)
            do throws(Errno) {
                let st = try r.fileSystem.statfs(NodeID(ino))
                r.reply(statfs: st)
            } catch { r.reply(error: error) }
        }
        ops.getxattr = { req, ino, name, size in
            let r = Request(req!)
            do throws(Errno) {
                let answer = try r.fileSystem.getxattr(NodeID(ino), name: name!, size: size)
                r.reply(xattr: answer)
            } catch { r.reply(error: error) }
        }
        ops.listxattr = { req, ino, size in
            let r = Request(req!)
            do throws(Errno) {
                let answer = try r.fileSystem.listxattr(NodeID(ino), size: size)
                r.reply(xattr: answer)
            } catch { r.reply(error: error) }
        }
        ops.access = { req, ino, mask in
            let r = Request(req!)
            let c = r.context
            do throws(Errno) {
                try r.fileSystem.access(NodeID(ino), mask: mask, uid: c.uid, gid: c.gid,
                                        groups: Bridge.groups(r.raw))
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        installWriteOperations(&ops)
        return ops
    }

    /// Asks the kernel for what makes the mount fast and what the semantics need.
    static func negotiate(_ conn: UnsafeMutablePointer<fuse_conn_info>, _ session: FuseConnection) {
        let fs = session.fileSystem
        var want = conn.pointee.want
        let capable = conn.pointee.capable
        for cap in [FUSE_CAP_SPLICE_WRITE, FUSE_CAP_SPLICE_MOVE, FUSE_CAP_READDIRPLUS,
                    FUSE_CAP_ASYNC_READ, FUSE_CAP_PARALLEL_DIROPS] {
            if capable & UInt32(cap) != 0 { want |= UInt32(cap) }
        }
        // Readdirplus in the kernel's "auto" mode: attributes with the first chunk of a listing,
        // and with later ones when lookups came in between. Asking for them with every chunk
        // halves a cold find(1) over the benchmark tree (3.2 s to 1.6 s: no LOOKUP per entry
        // past the first chunk) but makes a names-only listing of a 30k-entry directory five
        // times slower (0.05 s to 0.3 s: a lookup here and an inode in the kernel per entry).
        if capable & UInt32(FUSE_CAP_READDIRPLUS_AUTO) != 0 { want |= UInt32(FUSE_CAP_READDIRPLUS_AUTO) }
        if fs.options.writebackCache && !fs.isReadOnly && capable & UInt32(FUSE_CAP_WRITEBACK_CACHE) != 0 {
            want |= UInt32(FUSE_CAP_WRITEBACK_CACHE)
            fs.writebackCache.store(true, ordering: .relaxed)
        }
        conn.pointee.want = want
        if capable & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0 { session.opensDirectoriesItself.store(true, ordering: .relaxed) }
        var extra: UInt32 = 0
        if capable & UInt32(FUSE_CAP_PARALLEL_DIROPS) != 0 { extra |= DeviceIO.parallelDirops }
        // With the writeback cache, writes reach the daemon without their caller: the kernel
        // must then clear setuid itself.
        if capable & UInt32(FUSE_CAP_HANDLE_KILLPRIV) != 0 && want & UInt32(FUSE_CAP_WRITEBACK_CACHE) == 0 {
            extra |= DeviceIO.handleKillpriv
            fs.killPrivileges.store(true, ordering: .relaxed)
        }
        session.initReplyFlags.store(extra, ordering: .relaxed)
    }


    /// Fills one readdir(plus) reply from the directory's shared listing, after `offset`.
    static func readdir(_ r: consuming Request, _ ino: NodeID, size: Int, offset: off_t, plus: Bool) {
        let fs = r.fileSystem
        let handle: DirectoryHandle
        do throws(Errno) { handle = try fs.sharedListing(ino) } catch { r.reply(error: error); return }
        guard offset >= 0 else { r.reply(error: .invalidArgument); return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 8)
        defer { buffer.deallocate() }
        let listing: DirectoryHandle.Listing
        do throws(Errno) { listing = try handle.currentListing() } catch { r.reply(error: error); return }
        let entries = listing.entries
        let current = plus && fs.listingIsCurrent(listing, of: handle)
        var used = 0
        var index = listing.start(after: Int64(offset))
        // The reader asks once more past the last entry, for the empty reply that ends the
        // listing: the listing is done with then.
        if index == entries.count { fs.listingRead(handle) }
        while index < entries.count {
            let e = entries[index]
            let next = off_t(listing.offsets[index])
            let room = size - used
            let dst = buffer.baseAddress!.advanced(by: used).assumingMemoryBound(to: CChar.self)
            let added: Int = e.name.withCString { name in
                if plus {
                    // Measure first: a lookup counted for an entry that does not fit would leak.
                    let need = fuse_add_direntry_plus(r.raw, nil, 0, name, nil, 0)
                    if need > room { return need }
                    var param = fuse_entry_param()
                    if index >= 2, let entry = try? fs.lookup(listed: e, in: handle, layers: listing.layers, current: current) {
                        param = fuse_entry_param(entry, timeout: fs.options.timeout)
                    } else {
                        param.attr.st_ino = ino_t(e.ino)
                        param.attr.st_mode = mode_t(e.type) << 12
                    }
                    return fuse_add_direntry_plus(r.raw, dst, room, name, &param, next)
                } else {
                    var st = stat()
                    st.st_ino = ino_t(e.ino)
                    st.st_mode = mode_t(e.type) << 12
                    return fuse_add_direntry(r.raw, dst, room, name, &st, next)
                }
            }
            if added > room { break }
            used += added
            index += 1
        }
        r.reply(buffer: UnsafeRawBufferPointer(rebasing: buffer[0..<used]))
    }

    /// The caller's supplementary groups.
    static func groups(_ req: fuse_req_t) -> [gid_t] {
        var list = [gid_t](repeating: 0, count: 64)
        let n = fuse_req_getgroups(req, Int32(list.count), &list)
        if n <= 0 { return [] }
        if Int(n) > list.count {
            list = [gid_t](repeating: 0, count: Int(n))
            let m = fuse_req_getgroups(req, Int32(list.count), &list)
            return Array(list.prefix(Int(max(0, min(m, n)))))
        }
        return Array(list.prefix(Int(n)))
    }
}
