import CLinux
import Glibc
import SystemPackage

/// The path side of the syscall layer: what the image store, the file locks, the C API and the
/// command line do with whole paths (a store directory, an output file, a mountpoint).
///
/// Same rules as `Sys`: each wrapper names the call it makes, retries `EINTR` in `retrying`,
/// throws `Errno`, and opens with `O_CLOEXEC`. Paths are resolved relative to `dirfd`
/// (`AT_FDCWD` by default, the calling process's working directory), as the `*at` calls do; none
/// of this is on a request's path, so `String`s are fine here.
extension Sys {
    /// `openat(2)` of a path.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0,
                            relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) -> Int32 {
        try retrying { Glibc.openat(dirfd, path, flags | O_CLOEXEC, mode) }
    }

    /// `fstatat(2)` of a path; follows a final symlink only when `follow`.
    public static func pathStat(_ path: String, follow: Bool = false,
                            relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) -> stat {
        var st = stat()
        _ = try retrying { Glibc.fstatat(dirfd, path, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// `mkdirat(2)` of a path.
    public static func mkdir(_ path: String, _ mode: mode_t, relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) {
        _ = try retrying { Glibc.mkdirat(dirfd, path, mode) }
    }

    /// `mknodat(2)` of a FIFO at a path.
    public static func mkfifo(_ path: String, _ mode: mode_t, relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) {
        _ = try retrying { Glibc.mknodat(dirfd, path, S_IFIFO | mode, 0) }
    }

    /// `unlinkat(2)` of a path (`AT_REMOVEDIR` when `directory`).
    public static func unlink(_ path: String, directory: Bool = false,
                              relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) {
        _ = try retrying { Glibc.unlinkat(dirfd, path, directory ? AT_REMOVEDIR : 0) }
    }

    /// `renameat2(2)` of two paths (`flags` as for `renameat2`, 0 for a plain `rename`).
    public static func rename(_ from: String, to: String, flags: UInt32 = 0,
                              relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) {
        try renameat2(dirfd, from, dirfd, to, flags)
    }

    /// `faccessat(2)`: whether the calling process may access `path` as `mode` says (`W_OK`...).
    public static func access(_ path: String, _ mode: Int32, relativeTo dirfd: Int32 = AT_FDCWD) -> Bool {
        (try? retrying { Glibc.faccessat(dirfd, path, mode, 0) }) != nil
    }

    /// `statvfs(3)` of a path.
    public static func pathStatvfs(_ path: String) throws(Errno) -> statvfs {
        var st = statvfs()
        _ = try retrying { cStatvfs(path, &st) }
        return st
    }

    /// `read(2)`; returns the bytes read (0 at end of file).
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// `write(2)` until all of `bytes` are written.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try write(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]))
        }
    }

    /// Reads `fd` from its current offset to its end, refusing more than `limit` bytes
    /// (`EFBIG`): for small documents, never for layer data.
    public static func readAll(_ fd: Int32, limit: Int) throws(Errno) -> [UInt8] {
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { chunk.deallocate() }
        while true {
            let n = try read(fd, chunk)
            if n == 0 { return out }
            guard out.count + n <= limit else { throw Errno.fileTooLarge }
            out += chunk[0..<n]
        }
    }

    /// `flock(2)`: `LOCK_SH` or `LOCK_EX`, with `LOCK_NB` to fail with `EWOULDBLOCK` instead
    /// of waiting.
    public static func flock(_ fd: Int32, _ operation: Int32) throws(Errno) {
        _ = try retrying { cFlock(fd, operation) }
    }

    /// Every name in the directory at `path` but `.` and `..`, in the filesystem's order.
    public static func entryNames(_ path: String, relativeTo dirfd: Int32 = AT_FDCWD) throws(Errno) -> [String] {
        let fd = try open(path, O_RDONLY | O_DIRECTORY, relativeTo: dirfd)
        defer { close(fd) }
        var names: [String] = []
        try forEachEntry(in: fd) { e in names.append(String(decoding: e.name, as: UTF8.self)) }
        return names
    }

    /// `umask(2)`: sets the file mode creation mask of the calling thread's filesystem context
    /// (the process's, unless `unshareFilesystemContext` gave the thread its own); returns the
    /// old mask.
    @discardableResult
    public static func umask(_ mask: mode_t) -> mode_t { Glibc.umask(mask) }

    /// `unshare(CLONE_FS)`: gives the calling thread its own working directory, root and umask,
    /// inherited by the threads it creates afterwards. A mount served inside a host process
    /// sets its serving threads' umask this way without changing the host's.
    public static func unshareFilesystemContext() throws(Errno) {
        _ = try retrying { CLinux.unshare(unionfs_CLONE_FS) }
    }
}

// The C calls whose names a struct of the same name hides inside `Sys`.
private func cStatvfs(_ path: String, _ st: inout statvfs) -> Int32 { statvfs(path, &st) }
private func cFlock(_ fd: Int32, _ operation: Int32) -> Int32 { flock(fd, operation) }
