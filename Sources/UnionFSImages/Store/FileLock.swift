import Glibc
import UnionFS

/// An flock(2) on a lock file: shared or exclusive, held until released or the process ends
/// (the descriptor is inherited by a daemonized mount, which keeps its layers in use).
final class FileLock: @unchecked Sendable {
    let path: String
    private var fd: Int32

    /// Opens (creating) the lock file and takes the lock, waiting unless `wait` is false; nil
    /// when not waiting and someone else holds a conflicting lock.
    init?(_ path: String, exclusive: Bool, wait: Bool = true) throws(UnionFSError) {
        self.path = path
        do { fd = try Sys.open(path, O_RDWR | O_CREAT, 0o644) } catch {
            throw .io(error, "cannot open lock '\(path)': \(error)")
        }
        do {
            try Sys.flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB))
        } catch {
            Sys.close(fd)
            if error == .wouldBlock { return nil }
            throw .io(error, "cannot lock '\(path)': \(error)")
        }
    }

    /// Turns an exclusive lock into a shared one (others may then share it).
    func downgrade() { try? Sys.flock(fd, LOCK_SH) }

    /// Closes the descriptor, which releases the lock.
    func release() {
        guard fd >= 0 else { return }
        Sys.close(fd)
        fd = -1
    }

    deinit { release() }
}
