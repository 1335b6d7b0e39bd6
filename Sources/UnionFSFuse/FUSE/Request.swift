import CFuse3
import Glibc
import SystemPackage
import UnionFSCore

/// A FUSE request that must be answered exactly once.
///
/// Replies carry node ids (`NodeID`) as the kernel's inode numbers and `st_ino` as the core
/// gives it (the number the mount shows, `InodeNumbers.shown`).
///
/// Every `reply…` method consumes the request, so the compiler rejects a second reply; and if a
/// handler lets a request go without replying, `deinit` answers `EIO` so the caller never hangs.
struct Request: ~Copyable {
    let raw: fuse_req_t

    init(_ raw: fuse_req_t) { self.raw = raw }

    deinit { fuse_reply_err(raw, EIO) }

    /// The session serving this request (its userdata).
    var connection: FuseConnection {
        Unmanaged<FuseConnection>.fromOpaque(fuse_req_userdata(raw)!).takeUnretainedValue()
    }

    /// The filesystem serving this request.
    var fileSystem: UnionFileSystem { connection.fileSystem }

    /// uid, gid and pid of the calling process.
    var context: (uid: uid_t, gid: gid_t, pid: pid_t) {
        let c = fuse_req_ctx(raw)!.pointee
        return (c.uid, c.gid, c.pid)
    }

    /// Whether the caller has a group as its own or a supplementary one (the supplementary
    /// groups come from /proc, so they are read only when asked).
    var groupCheck: (gid_t) -> Bool {
        let raw = self.raw, own = context.gid
        return { gid in own == gid || Bridge.groups(raw).contains(gid) }
    }

    consuming func reply(error: Errno) {
        fuse_reply_err(raw, error.rawValue)
        discard self
    }

    consuming func replyOK() {
        fuse_reply_err(raw, 0)
        discard self
    }

    /// For `forget`: no answer goes back to the kernel.
    consuming func replyNone() {
        fuse_reply_none(raw)
        discard self
    }

    consuming func reply(entry: fuse_entry_param) {
        var e = entry
        fuse_reply_entry(raw, &e)
        discard self
    }

    consuming func reply(create entry: fuse_entry_param, file: fuse_file_info) {
        var e = entry, f = file
        fuse_reply_create(raw, &e, &f)
        discard self
    }

    consuming func reply(attributes st: stat, timeout: Double) {
        var s = st
        fuse_reply_attr(raw, &s, timeout)
        discard self
    }

    consuming func reply(link: [UInt8]) {
        var bytes = link
        bytes.append(0)
        bytes.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(raw, $0.baseAddress!) }
        }
        discard self
    }

    consuming func reply(open file: fuse_file_info) {
        var f = file
        fuse_reply_open(raw, &f)
        discard self
    }

    consuming func reply(buffer: UnsafeRawBufferPointer) {
        fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        discard self
    }

    /// Answers a read with `size` bytes at `offset` of `fd`, spliced by the kernel where it can.
    consuming func reply(dataFrom fd: Int32, size: Int, offset: Int64) {
        var v = unionfs_fd_bufvec(fd, size, off_t(offset))
        fuse_reply_data(raw, &v, fuse_buf_copy_flags(0))
        discard self
    }

    consuming func reply(written count: Int) {
        fuse_reply_write(raw, count)
        discard self
    }

    consuming func reply(statfs st: statvfs) {
        var s = st
        fuse_reply_statfs(raw, &s)
        discard self
    }

    /// Answers getxattr/listxattr: the size asked for, or the bytes.
    consuming func reply(xattr answer: XattrAnswer) {
        switch answer {
        case .size(let n): fuse_reply_xattr(raw, n)
        case .data(let d): d.withUnsafeBytes { _ = fuse_reply_buf(raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
        discard self
    }

    /// Answers a size query of getxattr/listxattr.
    consuming func reply(xattrSize: Int) {
        fuse_reply_xattr(raw, xattrSize)
        discard self
    }

    consuming func reply(seekOffset: Int64) {
        fuse_reply_lseek(raw, off_t(seekOffset))
        discard self
    }
}

extension fuse_entry_param {
    /// An entry reply for `entry`, cached by the kernel for `timeout` seconds.
    init(_ entry: NodeEntry, timeout: Double) {
        self.init()
        ino = fuse_ino_t(entry.node.rawValue)
        generation = 1
        attr = entry.attributes
        attr_timeout = timeout
        entry_timeout = timeout
    }
}
