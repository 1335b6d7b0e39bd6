import CLinux
import Glibc
import SystemPackage
import UnionFSCore

/// The kernel's readahead for our mount: how far ahead of a sequential reader it asks the daemon
/// for a file's data (files passed through are read ahead by the layer's own filesystem).
///
/// Why it is set here: the kernel starts every FUSE mount at 128 KiB (its default for any
/// backing device) and at INIT takes our `max_readahead` only where it is smaller, so a mount
/// whose READs may carry 1 MiB (MAX_PAGES) still gets them 128 KiB at a time. Root may raise it
/// afterwards in `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, as `blockdev --setra` does for a
/// disk; the default here is one READ's size.
struct MountReadahead {
    /// `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb` of the mount.
    let path: String
    /// `readahead=KIB`, or nil for the default.
    let requested: Int?

    /// Found right after mounting, before INIT is answered: `unionfs_cached_device` sends the
    /// unserved mount no request. nil when the mountpoint cannot be stat'ed.
    init?(mountpoint: String, requested: Int?) {
        var major: UInt32 = 0, minor: UInt32 = 0
        guard unionfs_cached_device(mountpoint, &major, &minor) == 0 else { return nil }
        path = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
        self.requested = requested
    }

    /// Whether this process may set it at all: the file is root's, and root of a user namespace
    /// is not root there.
    static var permitted: Bool { Privilege.current.canWriteTrustedXattrs }

    /// Sets it once INIT is agreed (before, the kernel would lower it again at INIT): the value
    /// asked for, else `maxRead` bytes where permitted. A value asked for that cannot be set is
    /// said on stderr; the default is skipped quietly where not permitted.
    func apply(maxRead: Int) {
        guard let kib = requested ?? (Self.permitted ? maxRead / 1024 : nil) else { return }
        let text = Array("\(kib)\n".utf8)
        do throws(Errno) {
            let fd = try Sys.openat(AT_FDCWD, path, O_WRONLY)
            defer { Sys.close(fd) }
            var written: Result<Int, Errno> = .success(0)
            text.withUnsafeBytes { b in written = Result { () throws(Errno) in try Sys.write(fd, b) } }
            _ = try written.get()
        } catch {
            guard requested != nil else { return }
            let line = "unionfs-swift: readahead=\(kib) could not be set in \(path): \(error)\n"
            _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
        }
    }
}
