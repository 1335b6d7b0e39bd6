import Glibc
import Synchronization
import UnionFSCore

/// What one FUSE session serves and what its kernel agreed to at INIT; every handler
/// (`Handlers/`) is a method of it.
///
/// The protocol's own state lives here, not in the core: whether the kernel opens directories
/// itself. What changes the core's behaviour (the writeback cache, clearing setuid) is handed
/// to `UnionFileSystem` at INIT by `DeviceLoop.handshake`.
final class FuseConnection: Sendable {
    let fileSystem: UnionFileSystem
    /// The kernel opens directories without asking (`FUSE_NO_OPENDIR_SUPPORT`, set at INIT):
    /// opendir answers ENOSYS once, and the kernel then neither sends OPENDIR nor RELEASEDIR
    /// and caches every listing, two round trips fewer per directory on every walk.
    let opensDirectoriesItself = Atomic<Bool>(false)
    /// The kernel sends modes without the caller's umask (`FUSE_DONT_MASK`, agreed with
    /// POSIX_ACL): the daemon applies it, except under a directory with a default ACL, where
    /// POSIX says the ACL, not the umask, limits the new entry's mode (as the kernel does for
    /// kernel overlayfs's upper).
    let appliesUmask = Atomic<Bool>(false)
    /// The backing files of FUSE passthrough and the mode of each open inode (enabled at INIT).
    let passthrough: PassthroughFiles
    /// The connection's `/dev/fuse` descriptor, for notifications (-1 until INIT).
    let device = Atomic<Int32>(-1)
    /// Probes the next readdirplus chunk of a listing ahead (started by `DeviceLoop.run`).
    let prober: ListingProber
    /// Stores ahead the small files of a directory read one after another (started by
    /// `DeviceLoop.run`).
    let readAhead = FilesReadAhead()

    init(_ fileSystem: UnionFileSystem, stats: TransportStats = TransportStats()) {
        self.fileSystem = fileSystem
        passthrough = PassthroughFiles(stats: stats)
        prober = ListingProber(stats: stats)
    }

    /// The mode to create an entry with in `parent` from the kernel's `mode` and `umask`.
    func creationMode(_ mode: UInt32, umask: UInt32, in parent: NodeID) -> mode_t {
        guard appliesUmask.load(ordering: .relaxed) else { return mode_t(mode) }
        if fileSystem.hasDefaultACL(parent) { return mode_t(mode) }
        return mode_t(mode & ~umask)
    }
}
