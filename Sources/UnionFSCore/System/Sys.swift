import CLinux
import Glibc
import SystemPackage

/// The one thin layer over the syscalls UnionFS makes.
///
/// Every wrapper names the C function it calls, throws `Errno` (the only error type below the
/// command line) and retries `EINTR` through `retrying`, by choice, in this one place. Callers
/// pass names as NUL-terminated C strings so that hot paths build no `String`s.
public enum Sys {
    /// Calls `body` until it stops failing with `EINTR`; a negative result becomes `Errno`.
    /// For the `int`, `ssize_t` and `off_t` results of the calls below alike.
    @inline(__always)
    static func retrying<T: FixedWidthInteger & SignedInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = errno
            if e != EINTR { throw Errno(rawValue: e) }
        }
    }

    /// `openat(2)`.
    @inline(__always)
    public static func openat(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32,
                              _ mode: mode_t = 0) throws(Errno) -> Int32 {
        try retrying { Glibc.openat(dirfd, name, flags | O_CLOEXEC, mode) }
    }

    /// `close(2)`. Not retried: after EINTR the descriptor is already gone on Linux.
    @inline(__always)
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// `fstatat(2)`.
    @inline(__always)
    public static func fstatat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                               _ flags: Int32 = AT_SYMLINK_NOFOLLOW) throws(Errno) -> stat {
        var st = stat()
        _ = try retrying { Glibc.fstatat(dirfd, name, &st, flags) }
        return st
    }

    /// `fstat(2)`.
    @inline(__always)
    public static func fstat(_ fd: Int32) throws(Errno) -> stat {
        var st = stat()
        _ = try retrying { Glibc.fstat(fd, &st) }
        return st
    }

    /// `fstatvfs(3)`.
    public static func fstatvfs(_ fd: Int32) throws(Errno) -> statvfs {
        var st = statvfs()
        _ = try retrying { Glibc.fstatvfs(fd, &st) }
        return st
    }

    /// `fstatfs(2)`: the filesystem type (`f_type`, a magic number) of the one `fd` is on.
    public static func filesystemType(_ fd: Int32) throws(Errno) -> Int {
        var st = CLinux.statfs()
        _ = try retrying { CLinux.fstatfs(fd, &st) }
        return Int(st.f_type)
    }

    /// `readlinkat(2)` into `buffer`; returns the length (not NUL-terminated).
    @inline(__always)
    public static func readlinkat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                                  _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying {
            Glibc.readlinkat(dirfd, name, buffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                             buffer.count)
        }
    }

    /// `pread(2)`.
    @inline(__always)
    public static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer,
                             _ offset: Int64) throws(Errno) -> Int {
        try retrying { Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// `posix_fadvise(2)` with `POSIX_FADV_WILLNEED` for the whole file: the kernel starts
    /// reading it into the page cache and returns without waiting for the disk.
    public static func willNeed(_ fd: Int32) throws(Errno) {
        let rc = posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED)
        if rc != 0 { throw Errno(rawValue: rc) }
    }

    /// `pwrite(2)`.
    @inline(__always)
    public static func pwrite(_ fd: Int32, _ buffer: UnsafeRawBufferPointer,
                              _ offset: Int64) throws(Errno) -> Int {
        try retrying { Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// `fgetxattr(2)`; returns the value length. An empty buffer asks for the size.
    public static func fgetxattr(_ fd: Int32, _ name: UnsafePointer<CChar>,
                                 _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { CLinux.fgetxattr(fd, name, buffer.baseAddress, buffer.count) }
    }

    /// `flistxattr(2)`; returns the list length. An empty buffer asks for the size.
    public static func flistxattr(_ fd: Int32,
                                  _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying {
            CLinux.flistxattr(fd, buffer.baseAddress?.assumingMemoryBound(to: CChar.self),
                             buffer.count)
        }
    }

    /// `getxattr(2)` on a path (follows the last component: meant for `/proc/self/fd/N`) (used with `/proc/self/fd/N` for `O_PATH` descriptors).
    public static func pathGetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                 _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { CLinux.getxattr(path, name, buffer.baseAddress, buffer.count) }
    }

    /// `listxattr(2)` on a path (follows the last component: meant for `/proc/self/fd/N`).
    public static func pathListxattr(_ path: UnsafePointer<CChar>,
                                  _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying {
            CLinux.listxattr(path, buffer.baseAddress?.assumingMemoryBound(to: CChar.self),
                             buffer.count)
        }
    }

    /// `lgetxattr(2)`: never follows the last component (for `/proc/self/fd/<dirfd>/<name>`).
    public static func pathLgetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                     _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { CLinux.lgetxattr(path, name, buffer.baseAddress, buffer.count) }
    }

    /// `getxattrat(2)` (Linux 6.13) of the entry `name` of `dirfd`, never following a symlink.
    public static func getxattrat(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ xattr: UnsafePointer<CChar>,
                                  _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { CLinux.unionfs_getxattrat(dirfd, name, xattr, buffer.baseAddress, buffer.count) }
    }

    /// `listxattrat(2)` (Linux 6.13) of the entry `name` of `dirfd`, never following a symlink.
    public static func listxattrat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                                   _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying {
            CLinux.unionfs_listxattrat(dirfd, name, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    /// `llistxattr(2)`: never follows the last component (for `/proc/self/fd/<dirfd>/<name>`).
    public static func pathLlistxattr(_ path: UnsafePointer<CChar>,
                                      _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying {
            CLinux.llistxattr(path, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    /// `setxattr(2)` on a path (follows the last component: meant for `/proc/self/fd/N`).
    public static func pathSetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                 _ value: UnsafeRawBufferPointer, _ flags: Int32) throws(Errno) {
        _ = try retrying { CLinux.setxattr(path, name, value.baseAddress, value.count, flags) }
    }

    /// `removexattr(2)` on a path (follows the last component: meant for `/proc/self/fd/N`).
    public static func pathRemovexattr(_ path: UnsafePointer<CChar>,
                                    _ name: UnsafePointer<CChar>) throws(Errno) {
        _ = try retrying { CLinux.removexattr(path, name) }
    }

    /// `fsetxattr(2)`.
    public static func fsetxattr(_ fd: Int32, _ name: UnsafePointer<CChar>,
                                 _ value: UnsafeRawBufferPointer, _ flags: Int32) throws(Errno) {
        _ = try retrying { CLinux.fsetxattr(fd, name, value.baseAddress, value.count, flags) }
    }

    /// `mkdirat(2)`.
    public static func mkdirat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                               _ mode: mode_t) throws(Errno) {
        _ = try retrying { Glibc.mkdirat(dirfd, name, mode) }
    }

    /// `mknodat(2)`.
    public static func mknodat(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ mode: mode_t,
                               _ dev: dev_t) throws(Errno) {
        _ = try retrying { Glibc.mknodat(dirfd, name, mode, dev) }
    }

    /// `symlinkat(2)`.
    public static func symlinkat(_ target: UnsafePointer<CChar>, _ dirfd: Int32,
                                 _ name: UnsafePointer<CChar>) throws(Errno) {
        _ = try retrying { Glibc.symlinkat(target, dirfd, name) }
    }

    /// `linkat(2)`.
    public static func linkat(_ olddirfd: Int32, _ oldname: UnsafePointer<CChar>,
                              _ newdirfd: Int32, _ newname: UnsafePointer<CChar>,
                              _ flags: Int32) throws(Errno) {
        _ = try retrying { Glibc.linkat(olddirfd, oldname, newdirfd, newname, flags) }
    }

    /// `unlinkat(2)`.
    public static func unlinkat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                                _ flags: Int32) throws(Errno) {
        _ = try retrying { Glibc.unlinkat(dirfd, name, flags) }
    }

    /// `renameat2(2)`.
    public static func renameat2(_ olddirfd: Int32, _ oldname: UnsafePointer<CChar>,
                                 _ newdirfd: Int32, _ newname: UnsafePointer<CChar>,
                                 _ flags: UInt32) throws(Errno) {
        _ = try retrying {
            CLinux.renameat2(olddirfd, oldname, newdirfd, newname, flags)
        }
    }

    /// `fchmod(2)` of an open descriptor (so no name is resolved, and no symlink followed).
    public static func fchmod(_ fd: Int32, _ mode: mode_t) throws(Errno) {
        _ = try retrying { Glibc.fchmod(fd, mode) }
    }

    /// `fchownat(2)` with `AT_SYMLINK_NOFOLLOW`.
    public static func fchownat(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ uid: uid_t,
                                _ gid: gid_t, _ flags: Int32) throws(Errno) {
        _ = try retrying { Glibc.fchownat(dirfd, name, uid, gid, flags) }
    }

    /// `utimensat(2)`.
    public static func utimensat(_ dirfd: Int32, _ name: UnsafePointer<CChar>,
                                 _ times: (timespec, timespec), _ flags: Int32) throws(Errno) {
        var t = [times.0, times.1]
        _ = try retrying { Glibc.utimensat(dirfd, name, &t, flags) }
    }

    /// `futimens(3)`.
    public static func futimens(_ fd: Int32, _ times: (timespec, timespec)) throws(Errno) {
        var t = [times.0, times.1]
        _ = try retrying { Glibc.futimens(fd, &t) }
    }

    /// `ftruncate(2)`.
    public static func ftruncate(_ fd: Int32, _ size: Int64) throws(Errno) {
        _ = try retrying { Glibc.ftruncate(fd, off_t(size)) }
    }

    /// `fsync(2)`.
    public static func fsync(_ fd: Int32) throws(Errno) {
        _ = try retrying { Glibc.fsync(fd) }
    }

    /// `fdatasync(2)`.
    public static func fdatasync(_ fd: Int32) throws(Errno) {
        _ = try retrying { Glibc.fdatasync(fd) }
    }

    /// `lseek(2)`.
    public static func lseek(_ fd: Int32, _ offset: Int64, _ whence: Int32) throws(Errno) -> Int64 {
        Int64(try retrying { Glibc.lseek(fd, off_t(offset), whence) })
    }

    /// `fallocate(2)`.
    public static func fallocate(_ fd: Int32, _ mode: Int32, _ offset: Int64,
                                 _ length: Int64) throws(Errno) {
        _ = try retrying { CLinux.fallocate(fd, mode, off_t(offset), off_t(length)) }
    }

    /// `copy_file_range(2)`; returns bytes copied (0 at end of input).
    public static func copyFileRange(_ fdIn: Int32, _ offIn: inout Int64, _ fdOut: Int32,
                                     _ offOut: inout Int64, _ count: Int) throws(Errno) -> Int {
        var i = off_t(offIn), o = off_t(offOut)
        let n = try retrying { CLinux.copy_file_range(fdIn, &i, fdOut, &o, count, 0) }
        offIn = Int64(i); offOut = Int64(o)
        return n
    }

    /// `sendfile(2)` from `inFD` at `offIn` (advanced by what was copied) to `outFD` at its file
    /// position; returns bytes copied (0 at end of input). The kernel copies between any two
    /// filesystems this way, in its own pages, where `copy_file_range` refuses (`EXDEV`).
    public static func sendfile(_ outFD: Int32, _ inFD: Int32, _ offIn: inout Int64, _ count: Int) throws(Errno) -> Int {
        var i = off_t(offIn)
        let n = try retrying { CLinux.sendfile(outFD, inFD, &i, count) }
        offIn = Int64(i)
        return n
    }

    /// `sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE)`: starts writeback of the
    /// range's dirty pages and returns without waiting for it (a count of 0 means to the end of
    /// the file). A hint: it makes nothing durable, an `fsync` still must.
    public static func startWriteback(_ fd: Int32, _ offset: Int64, _ count: Int64) throws(Errno) {
        _ = try retrying { CLinux.sync_file_range(fd, off_t(offset), off_t(count), unionfs_SYNC_FILE_RANGE_WRITE) }
    }

    /// `dup(2)`.
    public static func dup(_ fd: Int32) throws(Errno) -> Int32 {
        try retrying { Glibc.fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }
}

extension Errno {
    /// The errno of the last failed libc call (for APIs that do not return -1 themselves).
    static var current: Errno { Errno(rawValue: errno) }
}

/// `O_PATH` (not exported by the Glibc module): a descriptor that only names a file.
public let O_PATH: Int32 = unionfs_O_PATH
public let O_DIRECT: Int32 = unionfs_O_DIRECT
public let O_NOATIME: Int32 = unionfs_O_NOATIME
/// `AT_EMPTY_PATH` and the `utimensat` markers, also GNU-only in the Glibc module.
public let AT_EMPTY_PATH: Int32 = 0x1000
public let UTIME_NOW: Int = (1 << 30) - 1
public let UTIME_OMIT: Int = (1 << 30) - 2

extension Errno {
    /// Runs `body` through a standard-library `rethrows` API (whose closures here throw only
    /// `Errno`) and gives the error back its type. Anything else would be a bug; it maps to EIO.
    @inline(__always)
    public static func lift<R>(_ body: () throws -> R) throws(Errno) -> R {
        do { return try body() } catch let e as Errno { throw e } catch { throw .ioError }
    }
}

extension Sys {
    /// `fchmodat(2)` with `AT_SYMLINK_NOFOLLOW` (glibc changes the mode of anything but a symlink).
    public static func fchmodat(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ mode: mode_t) throws(Errno) {
        _ = try retrying { Glibc.fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW) }
    }
}

extension Sys {
    /// `renameat2` flags.
    public static let renameNoReplace: UInt32 = unionfs_RENAME_NOREPLACE
    public static let renameExchange: UInt32 = unionfs_RENAME_EXCHANGE
    public static let renameWhiteout: UInt32 = unionfs_RENAME_WHITEOUT
}

extension Sys {
    /// `write(2)`; returns the bytes written (may be fewer than asked).
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try retrying { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// `getrlimit(2)`/`setrlimit(2)`: raises the soft limit of open files to the hard one and
    /// returns the new soft limit. A mount holds a descriptor per layer of every directory the
    /// kernel remembers, so a shell's default of 1024 runs out during one `find` of a rootfs.
    @discardableResult
    public static func raiseOpenFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }

    /// Caps glibc's malloc arenas at one per CPU (at least 2), unless `MALLOC_ARENA_MAX`
    /// chooses; for a daemon, before its workers start. By default each thread that allocates
    /// may get an arena of its own, up to 8 per CPU, and after a walk the nodes lie spread over
    /// them: VmHWM after the benchmark's cold walk (92k entries) was 47.7 to 49.1 MiB on
    /// `/dev/fuse`, and 44.2 to 44.5 MiB with 2 arenas (3 runs each), while 4 parallel tar reads
    /// and 2 untars on tmpfs took no longer (3.6 to 4.5 s before, 3.6 to 3.8 s after).
    public static func limitMallocArenas() {
        guard getenv("MALLOC_ARENA_MAX") == nil else { return }
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        _ = mallopt(M_ARENA_MAX, Int32(clamping: max(2, cpus)))
    }

    /// `getrlimit(2)`: the soft limit of open files, or nil when there is none.
    public static func openFileLimit() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return UInt64(limit.rlim_cur)
    }

    /// `geteuid(2)`: whether device nodes and ownership can be restored.
    public static func geteuid() -> uid_t { Glibc.geteuid() }
}
