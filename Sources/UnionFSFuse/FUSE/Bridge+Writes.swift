import CFuse3
import Glibc
import SystemPackage
import UnionFSCore

extension Bridge {
    /// The write side of the operations table (see `operations()` for the rules every entry keeps).
    static func installWriteOperations(_ ops: inout fuse_lowlevel_ops) {
        ops.create = { req, parent, name, mode, fi in
            Bridge.connection(req).create(Bridge.reply(req), parent: NodeID(parent), name: name!, mode: mode, flags: fi!.pointee.flags)
        }
        ops.mknod = { req, parent, name, mode, rdev in
            Bridge.connection(req).mknod(Bridge.reply(req), parent: NodeID(parent), name: name!, mode: mode, rdev: rdev)
        }
        ops.mkdir = { req, parent, name, mode in
            Bridge.connection(req).mkdir(Bridge.reply(req), parent: NodeID(parent), name: name!, mode: mode)
        }
        ops.symlink = { req, target, parent, name in
            Bridge.connection(req).symlink(Bridge.reply(req), target: target!, parent: NodeID(parent), name: name!)
        }
        ops.link = { req, ino, newParent, newName in
            Bridge.connection(req).link(Bridge.reply(req), node: NodeID(ino), newParent: NodeID(newParent), newName: newName!)
        }
        ops.unlink = { req, parent, name in Bridge.connection(req).unlink(Bridge.reply(req), parent: NodeID(parent), name: name!) }
        ops.rmdir = { req, parent, name in Bridge.connection(req).rmdir(Bridge.reply(req), parent: NodeID(parent), name: name!) }
        ops.rename = { req, parent, name, newParent, newName, flags in
            Bridge.connection(req).rename(Bridge.reply(req), parent: NodeID(parent), name: name!, newParent: NodeID(newParent),
                                   newName: newName!, flags: flags)
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            Bridge.connection(req).setattr(Bridge.reply(req), node: NodeID(ino), Bridge.changes(attr!.pointee, toSet), fh: fi?.pointee.fh)
        }
        ops.write_buf = { req, ino, bufv, off, fi in
            let c = Bridge.connection(req), fh = fi!.pointee.fh
            let b = bufv!.pointee
            // Writes arrive in libfuse's memory buffer (splice from the device is not asked
            // for); anything else is gathered into memory first.
            if b.count == 1 && b.idx == 0 && b.buf.flags.rawValue & FUSE_BUF_IS_FD.rawValue == 0 {
                let data = UnsafeRawBufferPointer(start: b.buf.mem.map { UnsafeRawPointer($0) + b.off }, count: b.buf.size - b.off)
                c.write(Bridge.reply(req), node: NodeID(ino), fh: fh, data: data, offset: Int64(off))
                return
            }
            let size = fuse_buf_size(bufv)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
            defer { buffer.deallocate() }
            var mem = fuse_bufvec()
            mem.count = 1
            mem.buf.size = size
            mem.buf.mem = buffer.baseAddress
            let n = fuse_buf_copy(&mem, bufv, fuse_buf_copy_flags(0))
            if n < 0 { Bridge.reply(req).error(Errno(rawValue: Int32(truncatingIfNeeded: -n))); return }
            c.write(Bridge.reply(req), node: NodeID(ino), fh: fh, data: UnsafeRawBufferPointer(rebasing: buffer[0..<n]), offset: Int64(off))
        }
        ops.flush = { req, _, fi in Bridge.connection(req).flush(Bridge.reply(req), fh: fi!.pointee.fh) }
        ops.fsync = { req, _, datasync, fi in Bridge.connection(req).fsync(Bridge.reply(req), fh: fi!.pointee.fh, dataOnly: datasync != 0) }
        ops.fallocate = { req, _, mode, offset, length, fi in
            Bridge.connection(req).fallocate(Bridge.reply(req), fh: fi!.pointee.fh, mode: mode, offset: Int64(offset), length: Int64(length))
        }
        ops.copy_file_range = { req, _, offIn, fiIn, _, offOut, fiOut, len, _ in
            Bridge.connection(req).copyFileRange(Bridge.reply(req), from: fiIn!.pointee.fh, at: Int64(offIn), to: fiOut!.pointee.fh,
                                          at: Int64(offOut), count: len)
        }
    }

    /// libfuse's `setattr` arguments as the core's changes.
    static func changes(_ a: stat, _ toSet: Int32) -> AttributeChanges {
        var c = AttributeChanges()
        if toSet & FUSE_SET_ATTR_MODE != 0 { c.mode = a.st_mode }
        if toSet & FUSE_SET_ATTR_UID != 0 { c.uid = a.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { c.gid = a.st_gid }
        if toSet & FUSE_SET_ATTR_SIZE != 0 { c.size = Int64(a.st_size) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { c.atime = timespec(tv_sec: 0, tv_nsec: UTIME_NOW) }
        else if toSet & FUSE_SET_ATTR_ATIME != 0 { c.atime = a.st_atim }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { c.mtime = timespec(tv_sec: 0, tv_nsec: UTIME_NOW) }
        else if toSet & FUSE_SET_ATTR_MTIME != 0 { c.mtime = a.st_mtim }
        return c
    }
}
