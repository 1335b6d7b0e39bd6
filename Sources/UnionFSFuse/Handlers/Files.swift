import Glibc
import SystemPackage
import UnionFSCore

/// Lookups, attributes and file data: one small function per FUSE operation, each one call
/// into the core and one reply. The transport (`Device/`) decodes the request and calls these.
extension FuseConnection {
    var timeout: Double { fileSystem.options.timeout }

    /// An entry reply: the node the kernel now holds once more, with its attributes.
    @inline(__always)
    func entry(_ r: consuming Reply, _ e: NodeEntry) {
        r.entry(node: e.node.rawValue, e.attributes, timeout: timeout)
    }

    /// Runs `body` on `name` validated (`FileName.validating`: EINVAL, ENAMETOOLONG), and
    /// answers its entry or error.
    @inline(__always)
    func entry(_ r: consuming Reply, name: UnsafePointer<CChar>, _ body: (borrowing FileName) throws(Errno) -> NodeEntry) {
        do throws(Errno) { entry(r, try FileName.validating(name, body)) } catch { r.error(error) }
    }

    func lookup(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>) {
        let fs = fileSystem
        do throws(Errno) {
            entry(r, try FileName.validating(name) { (n) throws(Errno) in try fs.lookup(parent: parent, name: n) })
        } catch .noSuchFileOrDirectory {
            // A negative entry (node id 0) the kernel may cache: names appear only through
            // this mount, and the kernel drops the negative entry when it creates one.
            r.entry(node: 0, stat(), timeout: timeout)
        } catch { r.error(error) }
    }

    func forget(_ r: consuming Reply, node: NodeID, count: UInt64) {
        fileSystem.forget(node, count: count)
        r.none()
    }

    /// `fh`: the handle the attributes are asked through (fstat of a file whose last name is
    /// gone), nil for a path.
    func getattr(_ r: consuming Reply, node: NodeID, fh: UInt64?) {
        do throws(Errno) {
            r.attributes(try attributes(node, fh: fh), timeout: timeout)
        } catch { r.error(error) }
    }

    func statx(_ r: consuming Reply, node: NodeID, fh: UInt64?) {
        do throws(Errno) {
            r.statx(try attributes(node, fh: fh), timeout: timeout)
        } catch { r.error(error) }
    }

    private func attributes(_ node: NodeID, fh: UInt64?) throws(Errno) -> stat {
        if let fh, fh & Handle.lower == 0 { return try fileSystem.getattr(node, openFile: Handle.fd(fh)) }
        return try fileSystem.getattr(node)
    }

    func readlink(_ r: consuming Reply, node: NodeID) {
        do throws(Errno) { r.bytes(try fileSystem.readlink(node)) } catch { r.error(error) }
    }

    /// `killSetID`: the kernel asks the daemon to clear setuid/setgid (HANDLE_KILLPRIV_V2's
    /// `FUSE_OPEN_KILL_SUIDGID`); nil where the transport cannot tell (then an `O_TRUNC` open
    /// by a caller without privileges clears them, as before).
    func open(_ r: consuming Reply, node: NodeID, flags: Int32, killSetID: Bool? = nil) {
        do throws(Errno) {
            let opened = try fileSystem.openHandle(node, flags: flags)
            if killSetID ?? (flags & O_TRUNC != 0) {
                // On failure the descriptor closes as `opened` goes.
                try clearSetID(node, r.caller, kernelAsked: killSetID != nil)
            }
            let lower = opened.inLowerLayer
            let fd = opened.takeDescriptor().take()
            let reply = passthroughOpen(node, OpenReply(fh: Handle.make(fd, flags: flags, lower: lower), flags: openFlags(flags)),
                                        eligible: !lower)
            if (lower || fileSystem.isReadOnly) && reply.flags & OpenReplyFlag.passthrough == 0
                && flags & O_ACCMODE == O_RDONLY && flags & O_DIRECT == 0 {
                if storeInPageCache(node, fd), let start = fileSystem.readAheadStart(after: node) {
                    readAhead.submit(start.directory, after: start.name)
                }
            }
            r.open(reply)
        } catch { r.error(error) }
    }

    /// A small lower file opened to be read on a writable mount (never passed through: see
    /// `passthroughOpen`), or any small file of a read-only mount not passed through (no
    /// passthrough without root): its whole content is stored in the kernel's page cache
    /// (`FUSE_NOTIFY_STORE`) before the open is answered, so reading it sends no READ,
    /// and no GETATTR after it either (the kernel drops a file's atime after every READ it
    /// sends, and `tar` or `cp` stat the file once read): two round trips fewer a file. Looked
    /// at once per node (a later open costs no syscall), never for a file copied up
    /// (`UnionFileSystem.storingLowerData`). Anything that fails leaves the file to the
    /// kernel's READs, and is tried again at the next open. True when it stored the file now.
    func storeInPageCache(_ node: NodeID, _ fd: Int32, ahead: Bool = false) -> Bool {
        let device = self.device.load(ordering: .relaxed)
        guard device >= 0 else { return false }
        var stored = false
        fileSystem.storingLowerData(node) { () -> Bool in
            guard let st = try? Sys.fstat(fd) else { return false }
            // Empty, too large, or not a regular file: nothing to store, now or later.
            guard st.st_mode & S_IFMT == S_IFREG, st.st_size > 0, st.st_size <= Self.storedAtOpenLimit else { return true }
            let size = Int(st.st_size)
            let data = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
            defer { data.deallocate() }
            guard (try? Sys.pread(fd, data, 0)) == size else { return false }
            return withUnsafeTemporaryAllocation(byteCount: 24, alignment: 8) { (head) -> Bool in
                var w = WireWriter(head.baseAddress!)
                Notification.store(node: node.rawValue, offset: 0, size: size, &w)
                let rc = DeviceChannel.write(device, unique: 0, field: NotifyCode.store.rawValue,
                                             UnsafeRawBufferPointer(rebasing: head[0..<w.offset]), UnsafeRawBufferPointer(data))
                guard rc == 0 else { return false }
                passthrough.stats.storedAtOpen.add(1, ordering: .relaxed)
                passthrough.stats.bytesStoredAtOpen.add(UInt64(size), ordering: .relaxed)
                if ahead { passthrough.stats.storedAhead.add(1, ordering: .relaxed) }
                stored = true
                return true
            }
        }
        return stored
    }

    /// Stores the small lower file `node` in the kernel's page cache before any open of it
    /// (`FilesReadAhead`): the store of `storeInPageCache`, through a descriptor of its own.
    func storeAhead(_ node: NodeID) {
        guard fileSystem.mayStoreLowerData(node) else { return }
        do throws(Errno) {
            let opened = try fileSystem.openHandle(node, flags: O_RDONLY)
            if fileSystem.isReadOnly || opened.inLowerLayer {
                _ = storeInPageCache(node, opened.descriptor.rawValue, ahead: true)
            }
        } catch {}  // gone or moved meanwhile: its own open stores it, or not
    }

    /// The largest file stored at its open: the size of one READ the kernel would send for
    /// it anyway (its readahead), and small enough for malloc's arenas.
    static let storedAtOpenLimit = 64 * 1024

    /// `open` as passthrough when this connection has it and the node's mode allows it
    /// (`PassthroughFiles`; `eligible`: not a lower file opened read-only on a writable mount):
    /// the backing id and FOPEN_PASSTHROUGH, without FOPEN_KEEP_CACHE, which the kernel refuses
    /// with it (`FOPEN_PASSTHROUGH_MASK` in fs/fuse/iomode.c: passthrough never fills the page
    /// cache of our inode; and an open without KEEP_CACHE drops the pages cached before, so a
    /// later cached open never reads pages older than a passthrough write). `O_DIRECT` goes to
    /// the backing file as the caller gave it (the kernel opens it with the caller's flags), so
    /// the caller's own alignment is checked by the layer's filesystem and the aligned copy of
    /// `DirectIO.swift` is not needed.
    func passthroughOpen(_ node: NodeID, _ open: OpenReply, eligible: Bool) -> OpenReply {
        guard let id = passthrough.open(node, fd: Handle.fd(open.fh), eligible: eligible) else { return open }
        var o = open
        o.fh |= Handle.passthrough
        o.flags = (o.flags & ~OpenReplyFlag.keepCache) | OpenReplyFlag.passthrough
        o.backingID = id
        return o
    }

    /// Keep the page cache across opens; and nothing to flush for a file opened read-only, or
    /// on an upper whose close cannot fail: spare the kernel a round trip on every close.
    func openFlags(_ flags: Int32) -> UInt32 {
        var f = OpenReplyFlag.keepCache
        if flags & O_ACCMODE == O_RDONLY || !fileSystem.closeCanFail { f |= OpenReplyFlag.noflush }
        return f
    }

    func read(_ r: consuming Reply, node: NodeID, fh: UInt64, size: Int, offset: Int64) {
        let (fd, owner) = Handle.readDescriptor(fileSystem, node, fh)
        if fh & Handle.direct != 0 && owner == nil {
            Handle.readDirect(r, fd, size: size, at: offset)
            return
        }
        r.data(from: fd, size: size, offset: offset)
        withExtendedLifetime(owner) {}  // the upper copy's descriptor stays open until here
    }

    func release(_ r: consuming Reply, node: NodeID, fh: UInt64) {
        passthrough.release(node, passthrough: fh & Handle.passthrough != 0)
        fileSystem.release(Descriptor(adopting: Handle.fd(fh)))
        r.ok()
    }

    func statfs(_ r: consuming Reply, node: NodeID) {
        do throws(Errno) { r.statfs(try fileSystem.statfs(node)) } catch { r.error(error) }
    }

    func access(_ r: consuming Reply, node: NodeID, mask: Int32) {
        let c = r.caller
        r.ok { () throws(Errno) in
            try fileSystem.access(node, mask: mask, uid: c.uid, gid: c.gid, groups: SupplementaryGroups.of(c.pid))
        }
    }

    func lseek(_ r: consuming Reply, node: NodeID, fh: UInt64, offset: Int64, whence: Int32) {
        let (fd, owner) = Handle.readDescriptor(fileSystem, node, fh)
        do throws(Errno) {
            let pos = try withExtendedLifetime(owner) { () throws(Errno) in
                try fileSystem.lseek(fd, offset: offset, whence: whence)
            }
            r.seek(pos)
        } catch { r.error(error) }
    }

    /// Clears setuid/setgid of `node` for `caller`. `kernelAsked`: the kernel sent the
    /// HANDLE_KILLPRIV_V2 flag (it checked `CAP_FSETID` itself); otherwise the core decides
    /// from the caller's uid whether this mount clears them.
    func clearSetID(_ node: NodeID, _ caller: RequestCaller, kernelAsked: Bool) throws(Errno) {
        try fileSystem.clearSetID(node, caller: kernelAsked ? uid_t.max : caller.uid, inGroup: caller.groupCheck)
    }
}
