import Glibc
import SystemPackage
import UnionFSCore

extension DeviceLoop {
    /// Calls the handler of `op` (one line each: the handlers hold the logic). FORGET,
    /// BATCH_FORGET and INTERRUPT get no answer; what is not served here gets `ENOSYS`, after
    /// which the kernel stops asking.
    static func handle(_ op: Operation, _ h: InHeader, _ r: consuming Reply, _ c: FuseConnection, killPrivilegesV2 v2: Bool) {
        let node = NodeID(h.node)
        switch op {
        case .lookup(let name): c.lookup(r, parent: node, name: name.pointer)
        case .forget(let count): c.forget(r, node: node, count: count)
        case .batchForget(let count, let pairs):
            for i in 0..<count {
                c.fileSystem.forget(NodeID(pairs.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self)),
                                    count: pairs.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self))
            }
            r.none()
        case .getattr(let flags, let fh): c.getattr(r, node: node, fh: flags & RequestFlag.getattrFH != 0 ? fh : nil)
        case .statx(let flags, let fh, _, _): c.statx(r, node: node, fh: flags & RequestFlag.getattrFH != 0 ? fh : nil)
        case .setattr(let s):
            c.setattr(r, node: node, changes(s), fh: s.valid & SetattrValid.fh != 0 ? s.fh : nil,
                      killSetID: v2 ? s.valid & SetattrValid.killSUIDGID != 0 : nil)
        case .readlink: c.readlink(r, node: node)
        case .symlink(let name, let target): c.symlink(r, target: target.pointer, parent: node, name: name.pointer)
        case .mknod(let mode, let rdev, let umask, let name):
            c.mknod(r, parent: node, name: name.pointer, mode: c.creationMode(mode, umask: umask, in: node), rdev: dev_t(rdev))
        case .mkdir(let mode, let umask, let name):
            c.mkdir(r, parent: node, name: name.pointer, mode: c.creationMode(mode, umask: umask, in: node))
        case .unlink(let name): c.unlink(r, parent: node, name: name.pointer)
        case .rmdir(let name): c.rmdir(r, parent: node, name: name.pointer)
        case .rename(let newParent, let flags, let name, let newName):
            c.rename(r, parent: node, name: name.pointer, newParent: NodeID(newParent), newName: newName.pointer, flags: flags)
        case .link(let old, let newName): c.link(r, node: NodeID(old), newParent: node, newName: newName.pointer)
        case .open(let flags, let openFlags):
            c.open(r, node: node, flags: Int32(bitPattern: flags),
                   killSetID: v2 ? openFlags & RequestFlag.openKillSUIDGID != 0 : nil)
        case .create(let flags, let mode, let umask, _, let name):
            c.create(r, parent: node, name: name.pointer, mode: c.creationMode(mode, umask: umask, in: node),
                     flags: Int32(bitPattern: flags))
        case .read(let a):
            c.read(r, node: node, fh: a.fh, size: Int(a.size), offset: Int64(bitPattern: a.offset))
        case .write(let fh, let offset, let writeFlags, _, let data):
            c.write(r, node: node, fh: fh, data: data, offset: Int64(bitPattern: offset),
                    killSetID: v2 ? writeFlags & RequestFlag.writeKillSUIDGID != 0 : nil)
        case .statfs: c.statfs(r, node: node)
        case .release(let fh, _, _): c.release(r, node: node, fh: fh)
        case .flush(let fh): c.flush(r, fh: fh)
        case .fsync(let fh, let flags): c.fsync(r, fh: fh, dataOnly: flags & RequestFlag.fsyncDataOnly != 0)
        case .fsyncdir: c.fsyncdir(r, node: node)
        case .opendir: c.opendir(r, node: node)
        case .readdir(let a): c.readdir(r, node: node, size: Int(a.size), offset: Int64(bitPattern: a.offset), plus: false)
        case .readdirplus(let a): c.readdir(r, node: node, size: Int(a.size), offset: Int64(bitPattern: a.offset), plus: true)
        case .releasedir: c.releasedir(r)
        case .setxattr(let flags, let name, let value, let setxattrFlags):
            c.setxattr(r, node: node, name: name.pointer, value: value, flags: Int32(bitPattern: flags),
                       clearingSetGID: setxattrFlags & SetxattrFlag.aclKillSGID != 0)
        case .getxattr(let size, let name): c.getxattr(r, node: node, name: name.pointer, size: Int(size))
        case .listxattr(let size): c.listxattr(r, node: node, size: Int(size))
        case .removexattr(let name): c.removexattr(r, node: node, name: name.pointer)
        case .access(let mask): c.access(r, node: node, mask: Int32(bitPattern: mask))
        case .fallocate(let fh, let offset, let length, let mode):
            c.fallocate(r, fh: fh, mode: Int32(bitPattern: mode), offset: Int64(bitPattern: offset),
                        length: Int64(bitPattern: length))
        case .lseek(let fh, let offset, let whence):
            c.lseek(r, node: node, fh: fh, offset: Int64(bitPattern: offset), whence: Int32(bitPattern: whence))
        case .copyFileRange(let fhIn, let offIn, _, let fhOut, let offOut, let length, _):
            c.copyFileRange(r, from: fhIn, at: Int64(bitPattern: offIn), to: fhOut, at: Int64(bitPattern: offOut),
                            count: Int(clamping: length))
        case .interrupt: r.none()  // requests finish quickly; the kernel gets their answer
        case .syncfs, .destroy: r.ok()
        case .`init`: r.error(.ioError)  // INIT was answered by the handshake
        case .unsupported: r.error(.noFunction)
        }
    }

    /// `fuse_setattr_in` as the core's changes.
    static func changes(_ s: SetattrIn) -> AttributeChanges {
        var c = AttributeChanges()
        if s.valid & SetattrValid.mode != 0 { c.mode = mode_t(s.mode) }
        if s.valid & SetattrValid.uid != 0 { c.uid = uid_t(s.uid) }
        if s.valid & SetattrValid.gid != 0 { c.gid = gid_t(s.gid) }
        if s.valid & SetattrValid.size != 0 { c.size = Int64(bitPattern: s.size) }
        if s.valid & SetattrValid.atimeNow != 0 { c.atime = timespec(tv_sec: 0, tv_nsec: Int(UTIME_NOW)) }
        else if s.valid & SetattrValid.atime != 0 { c.atime = s.atime }
        if s.valid & SetattrValid.mtimeNow != 0 { c.mtime = timespec(tv_sec: 0, tv_nsec: Int(UTIME_NOW)) }
        else if s.valid & SetattrValid.mtime != 0 { c.mtime = s.mtime }
        return c
    }
}
