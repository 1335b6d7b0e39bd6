import Glibc
import SystemPackage
import UnionFSCore

/// Operations that change the tree or file data (see `Files.swift` for the rules every handler
/// keeps).
extension FuseConnection {
    func create(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>, mode: mode_t, flags: Int32) {
        let fs = fileSystem, owner = r.caller.owner
        do throws(Errno) {
            let created = try FileName.validating(name) { (n) throws(Errno) in
                try fs.create(parent: parent, name: n, mode: mode, flags: flags, caller: owner)
            }
            let e = created.entry
            var open = OpenReply(fh: Handle.make(created.takeDescriptor().take(), flags: flags), flags: OpenReplyFlag.keepCache)
            if !fs.closeCanFail { open.flags |= OpenReplyFlag.noflush }  // as in `open`
            // A new file is in the upper: passthrough where the connection has it.
            r.create(node: e.node.rawValue, e.attributes, timeout: timeout, open: passthroughOpen(e.node, open, eligible: true))
        } catch { r.error(error) }
    }

    func mknod(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>, mode: mode_t, rdev: dev_t) {
        let fs = fileSystem, owner = r.caller.owner
        entry(r, name: name) { (n) throws(Errno) in try fs.mknod(parent: parent, name: n, mode: mode, rdev: rdev, caller: owner) }
    }

    func mkdir(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>, mode: mode_t) {
        let fs = fileSystem, owner = r.caller.owner
        entry(r, name: name) { (n) throws(Errno) in try fs.mkdir(parent: parent, name: n, mode: mode, caller: owner) }
    }

    func symlink(_ r: consuming Reply, target: UnsafePointer<CChar>, parent: NodeID, name: UnsafePointer<CChar>) {
        let fs = fileSystem, owner = r.caller.owner
        entry(r, name: name) { (n) throws(Errno) in try fs.symlink(target: target, parent: parent, name: n, caller: owner) }
    }

    func link(_ r: consuming Reply, node: NodeID, newParent: NodeID, newName: UnsafePointer<CChar>) {
        let fs = fileSystem
        entry(r, name: newName) { (n) throws(Errno) in try fs.link(node, newParent: newParent, newName: n) }
    }

    func unlink(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>) {
        r.ok { () throws(Errno) in
            try FileName.validating(name) { (n) throws(Errno) in try fileSystem.unlink(parent: parent, name: n) }
        }
    }

    func rmdir(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>) {
        r.ok { () throws(Errno) in
            try FileName.validating(name) { (n) throws(Errno) in try fileSystem.rmdir(parent: parent, name: n) }
        }
    }

    func rename(_ r: consuming Reply, parent: NodeID, name: UnsafePointer<CChar>, newParent: NodeID,
                newName: UnsafePointer<CChar>, flags: UInt32) {
        r.ok { () throws(Errno) in
            try FileName.validating(name) { (from) throws(Errno) in
                try FileName.validating(newName) { (to) throws(Errno) in
                    try fileSystem.rename(parent: parent, name: from, newParent: newParent, newName: to, flags: flags)
                }
            }
        }
    }

    /// `changes` as decoded; `fh` the handle it came through; `killSetID` as in `open` (for a
    /// truncation: HANDLE_KILLPRIV_V2's `FATTR_KILL_SUIDGID`).
    func setattr(_ r: consuming Reply, node: NodeID, _ changes: AttributeChanges, fh: UInt64?, killSetID: Bool? = nil) {
        var c = changes
        do throws(Errno) {
            if c.size != nil && c.mode == nil && killSetID ?? true {
                c.mode = try fileSystem.modeClearingSetID(node, caller: killSetID != nil ? uid_t.max : r.caller.uid,
                                                          inGroup: r.caller.groupCheck)
            }
            r.attributes(try fileSystem.setattr(node, c, fd: fh.map(Handle.fd)), timeout: timeout)
        } catch { r.error(error) }
    }

    /// Writes `data` at `offset` through the handle `fh`; `killSetID` as in `open` (the write's
    /// `FUSE_WRITE_KILL_SUIDGID`).
    func write(_ r: consuming Reply, node: NodeID, fh: UInt64, data: UnsafeRawBufferPointer, offset: Int64,
               killSetID: Bool? = nil) {
        do throws(Errno) {
            if killSetID ?? true { try clearSetID(node, r.caller, kernelAsked: killSetID != nil) }
            if fh & Handle.direct != 0 {
                r.written(try Handle.writeDirect(Handle.fd(fh), data, at: offset))
            } else {
                r.written(try Sys.pwrite(Handle.fd(fh), data, offset))
            }
        } catch { r.error(error) }
    }

    func flush(_ r: consuming Reply, fh: UInt64) {
        // With the writeback cache the kernel sends FLUSH at every close whatever
        // FOPEN_NOFLUSH says (having written the dirty pages back first). Where close cannot
        // fail there is nothing to report: ENOSYS stops FLUSH for the whole mount.
        guard fileSystem.closeCanFail else { r.error(.noFunction); return }
        r.ok { () throws(Errno) in try fileSystem.flush(Handle.fd(fh)) }
    }

    func fsync(_ r: consuming Reply, fh: UInt64, dataOnly: Bool) {
        r.ok { () throws(Errno) in try fileSystem.fsync(Handle.fd(fh), dataOnly: dataOnly) }
    }

    func fallocate(_ r: consuming Reply, fh: UInt64, mode: Int32, offset: Int64, length: Int64) {
        r.ok { () throws(Errno) in try fileSystem.fallocate(Handle.fd(fh), mode: mode, offset: offset, length: length) }
    }

    func copyFileRange(_ r: consuming Reply, from fhIn: UInt64, at offIn: Int64, to fhOut: UInt64, at offOut: Int64,
                       count: Int) {
        do throws(Errno) {
            r.written(try fileSystem.copyFileRange(from: Handle.fd(fhIn), at: offIn, to: Handle.fd(fhOut), at: offOut,
                                                   count: count))
        } catch { r.error(error) }
    }
}
