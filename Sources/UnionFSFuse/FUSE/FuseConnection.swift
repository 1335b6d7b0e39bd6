import Synchronization
import UnionFSCore

/// What one FUSE session serves and what its kernel agreed to at INIT: the session's userdata,
/// reached by every request (`Request.connection`).
///
/// The protocol's own state lives here, not in the core: the flags the INIT reply must carry
/// and whether the kernel opens directories itself. What changes the core's behaviour (the
/// writeback cache, clearing setuid) is handed to `UnionFileSystem` at INIT by `Bridge.negotiate`.
final class FuseConnection: Sendable {
    let fileSystem: UnionFileSystem
    /// Flags for the INIT reply that libfuse does not send itself (`DeviceIO`), set at INIT by
    /// the bridge and taken once by the write of that reply.
    let initReplyFlags = Atomic<UInt32>(0)
    /// The kernel opens directories without asking (`FUSE_CAP_NO_OPENDIR_SUPPORT`, set at INIT):
    /// opendir answers ENOSYS once, and the kernel then neither sends OPENDIR nor RELEASEDIR
    /// and caches every listing, two round trips fewer per directory on every walk.
    let opensDirectoriesItself = Atomic<Bool>(false)

    init(_ fileSystem: UnionFileSystem) { self.fileSystem = fileSystem }
}
