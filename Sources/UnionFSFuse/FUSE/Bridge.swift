import CFuse3
import Glibc
import SystemPackage
import UnionFSCore

/// The libfuse low-level operations table: a thin adapter from libfuse's callbacks onto the
/// transport-agnostic handlers (`Handlers/`).
///
/// Each entry is a non-capturing `@convention(c)` closure in a library file (closures in
/// `main.swift` are MainActor-isolated and trap on libfuse's worker threads). Each turns its
/// arguments into typed values, wraps the request in a `Reply` and calls one handler, which
/// answers exactly once. No Swift error escapes.
enum Bridge {
    /// The session serving `req` (libfuse's userdata).
    @inline(__always)
    static func connection(_ req: fuse_req_t?) -> FuseConnection {
        Unmanaged<FuseConnection>.fromOpaque(fuse_req_userdata(req!)!).takeUnretainedValue()
    }

    /// The reply to `req`, with its caller.
    @inline(__always)
    static func reply(_ req: fuse_req_t?) -> Reply {
        let c = fuse_req_ctx(req!)!.pointee
        return Reply(.libfuse(req!), caller: RequestCaller(uid: c.uid, gid: c.gid, pid: c.pid))
    }

    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn, let userdata else { return }
            Bridge.negotiate(conn, Unmanaged<FuseConnection>.fromOpaque(userdata).takeUnretainedValue())
        }
        ops.lookup = { req, parent, name in Bridge.connection(req).lookup(Bridge.reply(req), parent: NodeID(parent), name: name!) }
        ops.forget = { req, ino, count in Bridge.connection(req).forget(Bridge.reply(req), node: NodeID(ino), count: count) }
        ops.forget_multi = { req, count, forgets in
            let c = Bridge.connection(req)
            for i in 0..<count { c.fileSystem.forget(NodeID(forgets![i].ino), count: forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, fi in Bridge.connection(req).getattr(Bridge.reply(req), node: NodeID(ino), fh: fi?.pointee.fh) }
        ops.readlink = { req, ino in Bridge.connection(req).readlink(Bridge.reply(req), node: NodeID(ino)) }
        ops.opendir = { req, ino, _ in Bridge.connection(req).opendir(Bridge.reply(req), node: NodeID(ino)) }
        ops.readdir = { req, ino, size, off, _ in
            Bridge.connection(req).readdir(Bridge.reply(req), node: NodeID(ino), size: size, offset: Int64(off), plus: false)
        }
        ops.readdirplus = { req, ino, size, off, _ in
            Bridge.connection(req).readdir(Bridge.reply(req), node: NodeID(ino), size: size, offset: Int64(off), plus: true)
        }
        ops.releasedir = { req, _, _ in Bridge.connection(req).releasedir(Bridge.reply(req)) }
        ops.fsyncdir = { req, ino, _, _ in Bridge.connection(req).fsyncdir(Bridge.reply(req), node: NodeID(ino)) }
        ops.open = { req, ino, fi in Bridge.connection(req).open(Bridge.reply(req), node: NodeID(ino), flags: fi!.pointee.flags) }
        ops.read = { req, ino, size, off, fi in
            Bridge.connection(req).read(Bridge.reply(req), node: NodeID(ino), fh: fi!.pointee.fh, size: size, offset: Int64(off))
        }
        ops.release = { req, _, fi in Bridge.connection(req).release(Bridge.reply(req), fh: fi!.pointee.fh) }
        ops.statfs = { req, ino in Bridge.connection(req).statfs(Bridge.reply(req), node: NodeID(ino)) }
        ops.access = { req, ino, mask in Bridge.connection(req).access(Bridge.reply(req), node: NodeID(ino), mask: mask) }
        ops.lseek = { req, ino, off, whence, fi in
            Bridge.connection(req).lseek(Bridge.reply(req), node: NodeID(ino), fh: fi!.pointee.fh, offset: Int64(off), whence: whence)
        }
        ops.getxattr = { req, ino, name, size in
            Bridge.connection(req).getxattr(Bridge.reply(req), node: NodeID(ino), name: name!, size: size)
        }
        ops.listxattr = { req, ino, size in Bridge.connection(req).listxattr(Bridge.reply(req), node: NodeID(ino), size: size) }
        ops.setxattr = { req, ino, name, value, size, flags in
            Bridge.connection(req).setxattr(Bridge.reply(req), node: NodeID(ino), name: name!,
                                     value: UnsafeRawBufferPointer(start: value, count: size), flags: flags)
        }
        ops.removexattr = { req, ino, name in Bridge.connection(req).removexattr(Bridge.reply(req), node: NodeID(ino), name: name!) }
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
}
