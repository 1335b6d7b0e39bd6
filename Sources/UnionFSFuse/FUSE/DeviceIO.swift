import CFuse3
import CLinux
import Glibc
import Synchronization
import UnionFSCore

/// The session's reads and writes of `/dev/fuse`, installed through libfuse's own hook
/// (`fuse_session_custom_io`), so that the INIT reply carries the flags libfuse 3.14 drops.
///
/// libfuse 3.14 sets `FUSE_CAP_PARALLEL_DIROPS` and `FUSE_CAP_HANDLE_KILLPRIV` in `want` by
/// default, but its `do_init` never copies either into the reply (later releases do). Without
/// the first, the kernel serializes every lookup and readdir in a directory; without the
/// second, it asks for the attributes before each chown, to clear setuid itself. At INIT the
/// bridge records which of the two the kernel offered and the filesystem wants
/// (`Bridge.negotiate`, into `FuseConnection.initReplyFlags`); the INIT reply is the first
/// message the session writes, and `writev` ORs them into its `flags` field. Every other
/// message, and every read, passes through untouched.
enum DeviceIO {
    /// `FUSE_PARALLEL_DIROPS` and `FUSE_HANDLE_KILLPRIV` in the kernel's numbering
    /// (`linux/fuse.h`), which differs from libfuse's `FUSE_CAP_*`.
    static let parallelDirops: UInt32 = 1 << 18
    static let handleKillpriv: UInt32 = 1 << 19

    /// Installs the hooks on `session`, whose descriptor is already mounted.
    static func install(on session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { fd, buf, len, _ in Glibc.read(fd, buf, len) }
        io.writev = { fd, iov, count, userdata in
            if let userdata, let iov {
                let session = Unmanaged<FuseConnection>.fromOpaque(userdata).takeUnretainedValue()
                let add = session.initReplyFlags.exchange(0, ordering: .relaxed)
                if add != 0 { DeviceIO.addFlags(add, toInitReply: iov, count: Int(count)) }
            }
            return Glibc.writev(fd, iov, count)
        }
        io.splice_send = { fdin, offin, fdout, offout, len, flags, _ in
            CLinux.splice(fdin, offin.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Int64.self) }, fdout,
                          offout.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Int64.self) }, len, flags)
        }
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }

    /// ORs `flags` into the INIT reply in `iov`: a 16-byte `fuse_out_header` with no error, then
    /// `fuse_init_out`, whose `flags` (after major, minor and max_readahead) is at byte 12.
    static func addFlags(_ flags: UInt32, toInitReply iov: UnsafeMutablePointer<iovec>, count: Int) {
        guard count >= 2, iov[0].iov_len == 16, iov[1].iov_len >= 16,
              let header = iov[0].iov_base, let body = iov[1].iov_base,
              header.load(fromByteOffset: 4, as: Int32.self) == 0,
              body.load(as: UInt32.self) == 7 else { return }
        let current = body.load(fromByteOffset: 12, as: UInt32.self)
        body.storeBytes(of: current | flags, toByteOffset: 12, as: UInt32.self)
    }
}
