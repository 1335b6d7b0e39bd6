import CFuse3
import Glibc
import SystemPackage
import UnionFSCore

extension Bridge {
    /// The write side of the operations table (see `operations()` for the rules every entry keeps).
    static func installWriteOperations(_ ops: inout fuse_lowlevel_ops) {
        ops.create = { req, parent, name, mode, fi in
            let r = Request(req!)
            let fs = r.fileSystem
            let c = r.context
            do throws(Errno) {
                var info = fi!.pointee
                let created = try FileName.validating(name!) { (n) throws(Errno) in
                    try fs.create(parent: NodeID(parent), name: n, mode: mode, flags: info.flags,
                                  caller: Caller(uid: c.uid, gid: c.gid))
                }
                let st = created.entry
                info.fh = Bridge.handle(created.takeDescriptor().take(), flags: info.flags)
                info.keep_cache = 1
                if !fs.closeCanFail { info.noflush = 1 }  // as in `open`
                r.reply(create: fuse_entry_param(st, timeout: fs.options.timeout), file: info)
            } catch { r.reply(error: error) }
        }
        ops.mknod = { req, parent, name, mode, rdev in
            let r = Request(req!)
            let fs = r.fileSystem
            let c = r.context
            do throws(Errno) {
                let st = try FileName.validating(name!) { (n) throws(Errno) in
                    try fs.mknod(parent: NodeID(parent), name: n, mode: mode, rdev: rdev,
                                 caller: Caller(uid: c.uid, gid: c.gid))
                }
                r.reply(entry: fuse_entry_param(st, timeout: fs.options.timeout))
            } catch { r.reply(error: error) }
        }
        ops.mkdir = { req, parent, name, mode in
            let r = Request(req!)
            let fs = r.fileSystem
            let c = r.context
            do throws(Errno) {
                let st = try FileName.validating(name!) { (n) throws(Errno) in
                    try fs.mkdir(parent: NodeID(parent), name: n, mode: mode, caller: Caller(uid: c.uid, gid: c.gid))
                }
                r.reply(entry: fuse_entry_param(st, timeout: fs.options.timeout))
            } catch { r.reply(error: error) }
        }
        ops.symlink = { req, target, parent, name in
            let r = Request(req!)
            let fs = r.fileSystem
            let c = r.context
            do throws(Errno) {
                let st = try FileName.validating(name!) { (n) throws(Errno) in
                    try fs.symlink(target: target!, parent: NodeID(parent), name: n,
                                   caller: Caller(uid: c.uid, gid: c.gid))
                }
                r.reply(entry: fuse_entry_param(st, timeout: fs.options.timeout))
            } catch { r.reply(error: error) }
        }
        ops.link = { req, ino, newParent, newName in
            let r = Request(req!)
            let fs = r.fileSystem
            do throws(Errno) {
                let st = try FileName.validating(newName!) { (n) throws(Errno) in
                    try fs.link(NodeID(ino), newParent: NodeID(newParent), newName: n)
                }
                r.reply(entry: fuse_entry_param(st, timeout: fs.options.timeout))
            } catch { r.reply(error: error) }
        }
        ops.unlink = { req, parent, name in
            let r = Request(req!)
            do throws(Errno) {
                let fs = r.fileSystem
                try FileName.validating(name!) { (n) throws(Errno) in try fs.unlink(parent: NodeID(parent), name: n) }
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.rmdir = { req, parent, name in
            let r = Request(req!)
            do throws(Errno) {
                let fs = r.fileSystem
                try FileName.validating(name!) { (n) throws(Errno) in try fs.rmdir(parent: NodeID(parent), name: n) }
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            let r = Request(req!)
            do throws(Errno) {
                let fs = r.fileSystem
                try FileName.validating(name!) { (from) throws(Errno) in
                    try FileName.validating(newName!) { (to) throws(Errno) in
                        try fs.rename(parent: NodeID(parent), name: from, newParent: NodeID(newParent),
                                      newName: to, flags: flags)
                    }
                }
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            let r = Request(req!)
            let fs = r.fileSystem
            let a = attr!.pointee
            var c = AttributeChanges()
            if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = a.st_mode }
            if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = a.st_uid }
            if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = a.st_gid }
            if toSet & FUSE_SET_ATTR_SIZE != 0 { c.size = Int64(a.st_size) }
            if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { c.atime = timespec(tv_sec: 0, tv_nsec: UTIME_NOW) }
            else if toSet & FUSE_SET_ATTR_ATIME != 0 { c.atime = a.st_atim }
            if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { c.mtime = timespec(tv_sec: 0, tv_nsec: UTIME_NOW) }
            else if toSet & FUSE_SET_ATTR_MTIME != 0 { c.mtime = a.st_mtim }
            let fd = fi.map { Int32(truncatingIfNeeded: $0.pointee.fh) }
            do throws(Errno) {
                if c.size != nil && c.mode == nil {
                    c.mode = try fs.modeClearingSetID(NodeID(ino), caller: r.context.uid, inGroup: r.groupCheck)
                }
                let st = try fs.setattr(NodeID(ino), c, fd: fd)
                r.reply(attributes: st, timeout: fs.options.timeout)
            } catch { r.reply(error: error) }
        }
        ops.write_buf = { req, ino, bufv, off, fi in
            let r = Request(req!)
            do throws(Errno) { try r.fileSystem.clearSetID(NodeID(ino), caller: r.context.uid, inGroup: r.groupCheck) } catch {
                r.reply(error: error)
                return
            }
            let fh = fi!.pointee.fh
            if fh & Bridge.directHandle != 0 {
                switch Bridge.writeDirect(Int32(truncatingIfNeeded: fh), bufv!, at: off) {
                case .success(let n): r.reply(written: n)
                case .failure(let e): r.reply(error: e)
                }
                return
            }
            let size = fuse_buf_size(bufv)
            var dst = unionfs_fd_bufvec(Int32(truncatingIfNeeded: fh), size, off)
            let n = fuse_buf_copy(&dst, bufv, fuse_buf_copy_flags(0))
            if n < 0 { r.reply(error: Errno(rawValue: Int32(truncatingIfNeeded: -n))) }
            else { r.reply(written: n) }
        }
        ops.flush = { req, _, fi in
            let r = Request(req!)
            // With the writeback cache the kernel sends FLUSH at every close whatever
            // FOPEN_NOFLUSH says (having written the dirty pages back first). Where close cannot
            // fail there is nothing to report: ENOSYS stops FLUSH for the whole mount.
            guard r.fileSystem.closeCanFail else { r.reply(error: .noFunction); return }
            do throws(Errno) {
                try r.fileSystem.flush(Int32(truncatingIfNeeded: fi!.pointee.fh))
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.fsync = { req, _, datasync, fi in
            let r = Request(req!)
            do throws(Errno) {
                try r.fileSystem.fsync(Int32(truncatingIfNeeded: fi!.pointee.fh), dataOnly: datasync != 0)
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.fsyncdir = { req, ino, _, _ in
            let r = Request(req!)
            do throws(Errno) {
                try r.fileSystem.fsyncdir(NodeID(ino))
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.fallocate = { req, _, mode, offset, length, fi in
            let r = Request(req!)
            do throws(Errno) {
                try r.fileSystem.fallocate(Int32(truncatingIfNeeded: fi!.pointee.fh), mode: mode,
                                           offset: Int64(offset), length: Int64(length))
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.copy_file_range = { req, _, offIn, fiIn, _, offOut, fiOut, len, _ in
            let r = Request(req!)
            do throws(Errno) {
                let n = try r.fileSystem.copyFileRange(
                    from: Int32(truncatingIfNeeded: fiIn!.pointee.fh), at: Int64(offIn),
                    to: Int32(truncatingIfNeeded: fiOut!.pointee.fh), at: Int64(offOut), count: len)
                r.reply(written: n)
            } catch { r.reply(error: error) }
        }
        ops.lseek = { req, ino, off, whence, fi in
            let r = Request(req!)
            let (fd, owner) = Bridge.readDescriptor(r.fileSystem, NodeID(ino), fi!.pointee.fh)
            do throws(Errno) {
                let pos = try withExtendedLifetime(owner) { () throws(Errno) in
                    try r.fileSystem.lseek(fd, offset: Int64(off), whence: whence)
                }
                r.reply(seekOffset: pos)
            } catch { r.reply(error: error) }
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            let r = Request(req!)
            do throws(Errno) {
                try r.fileSystem.setxattr(NodeID(ino), name: name!,
                                          value: UnsafeRawBufferPointer(start: value, count: size), flags: flags)
                r.replyOK()
            } catch { r.reply(error: error) }
        }
        ops.removexattr = { req, ino, name in
            let r = Request(req!)
            do throws(Errno) {
                try r.fileSystem.removexattr(NodeID(ino), name: name!)
                r.replyOK()
            } catch { r.reply(error: error) }
        }
    }
}
