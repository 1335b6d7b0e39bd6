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

    init(_ fileSystem: UnionFileSystem) { self.fileSystem = fileSystem }
}
