import CLinux
import Glibc
import SystemPackage
import UnionFSCore

/// The kernel's readahead for our mount, when `readahead=KIB` asks for one: how far ahead of a
/// sequential reader the kernel asks the daemon for a file's data (files passed through are read
/// ahead by the layer's own filesystem).
///
/// Why it is set here: the kernel starts every FUSE mount at 128 KiB (its default for any
/// backing device) and at INIT takes our `max_readahead` only where it is smaller, so only root
/// can raise it, afterwards, in `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, as `blockdev --setra`
/// does for a disk. Not raised by default: the same window is what a page fault in a mapped
/// file reads around itself, and 1 MiB made 300 random page faults in a cold 256 MiB file 70%
/// slower and a cold start of `node` from a lower layer 30% slower, where a sequential read
/// gained 15-45% (README, `readahead=`).
struct MountReadahead {
    /// `/sys/class/bdi/MAJOR:MINOR/read_ahead_kb` of the mount.
    let path: String
    /// `readahead=KIB`.
    let kib: Int

    /// Found right after mounting, before INIT is answered: `unionfs_cached_device` sends the
    /// unserved mount no request. nil when the mountpoint cannot be stat'ed.
    init?(mountpoint: String, kib: Int) {
        var major: UInt32 = 0, minor: UInt32 = 0
        guard unionfs_cached_device(mountpoint, &major, &minor) == 0 else { return nil }
        path = "/sys/class/bdi/\(major):\(minor)/read_ahead_kb"
        self.kib = kib
    }

    /// Whether this process may set it at all: the file is root's, and root of a user namespace
    /// is not root there.
    static var permitted: Bool { Privilege.current.canWriteTrustedXattrs }

    /// Sets it once INIT is agreed (before, the kernel would lower it again at INIT); a failure
    /// is said on stderr, and the mount keeps the kernel's value.
    func apply() {
        let text = Array("\(kib)\n".utf8)
        do throws(Errno) {
            let fd = try Sys.openat(AT_FDCWD, path, O_WRONLY)
            defer { Sys.close(fd) }
            var written: Result<Int, Errno> = .success(0)
            text.withUnsafeBytes { b in written = Result { () throws(Errno) in try Sys.write(fd, b) } }
            _ = try written.get()
        } catch {
            Self.say("readahead=\(kib) could not be set in \(path): \(error)")
        }
    }

    /// One line on stderr.
    static func say(_ message: String) {
        _ = Array("unionfs-swift: \(message)\n".utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
    }
}
