import Glibc

/// An flock(2) on a lock file: shared or exclusive, held until released or the process ends
/// (the descriptor is inherited by a daemonized mount, which keeps its layers in use).
final class FileLock: @unchecked Sendable {
    let path: String
    private var fd: Int32

    /// Opens (creating) the lock file and takes the lock, waiting unless `wait` is false; nil
    /// when not waiting and someone else holds a conflicting lock.
    init?(_ path: String, exclusive: Bool, wait: Bool = true) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ImageError("cannot open lock '\(path)': \(Files.errorText())") }
        var op = exclusive ? LOCK_EX : LOCK_SH
        if !wait { op |= LOCK_NB }
        while flock(fd, op) != 0 {
            let e = errno
            if e == EINTR { continue }
            close(fd)
            if e == EWOULDBLOCK { return nil }
            throw ImageError("cannot lock '\(path)': \(Files.errorText(e))")
        }
    }

    /// Turns an exclusive lock into a shared one (others may then share it).
    func downgrade() { _ = flock(fd, LOCK_SH) }

    /// Closes the descriptor, which releases the lock.
    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
