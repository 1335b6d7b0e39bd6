import Glibc
import Synchronization
import UnionFSCore

/// FUSE passthrough (Linux 6.9+): the backing files registered with the kernel, and which
/// opens of which inode may use them.
///
/// An open answered with `FOPEN_PASSTHROUGH` and a backing id makes the kernel serve that
/// file's reads, writes, splice and mmap from the backing file itself (`backing_file_open` of
/// the registered file's path with the caller's open flags and the daemon's credentials saved
/// at `FUSE_DEV_IOC_BACKING_OPEN`, fs/fuse/passthrough.c); the daemon still answers GETATTR,
/// SETATTR, FSYNC, FALLOCATE, LSEEK and RELEASE through the same handle.
///
/// The kernel's rules (fs/fuse/iomode.c, `fuse_file_io_open`): while any file of an inode is
/// open in passthrough, every open of it must be passthrough with the *same* backing (another
/// backing: EBUSY; a cached open: EINVAL), and while any is open cached, a passthrough open is
/// refused (ETXTBSY); each of these reaches the caller as EIO. So the mode is chosen per inode
/// and kept while the inode is open: this table counts the opens of each node in each mode and
/// keeps one backing id per node, registered at its first passthrough open and closed
/// (`FUSE_DEV_IOC_BACKING_CLOSE`) at its last release. The kernel drops its own count before it
/// sends RELEASE, so its counts are never above these, and a mode chosen from them never
/// conflicts with the kernel's.
///
/// Which files: what `open` calls eligible, never a lower file opened read-only on a writable
/// mount. Writes go to the backing file's path, so a backing file must be the file writes
/// belong to: a lower file open in passthrough would pin the inode to the lower file, and a
/// later write open (the copy-up moves the node to the upper) could then neither be
/// passthrough (the lower backing: EBUSY for a new one, writes to the lower layer with the old
/// one) nor cached (EINVAL): it would fail, where it succeeds without passthrough. Nor could
/// a new inode for the copy (a new node id) help: a descriptor opened read-only before a
/// copy-up reads the copy afterwards, as under kernel overlayfs (`FsxTests`), and a passthrough
/// descriptor keeps its backing file for life. Every file of
/// a read-only stack, and every file already in the upper (including those opened for write,
/// which are copied up first), has one file for its whole life and is eligible.
final class PassthroughFiles: Sendable {
    /// The `/dev/fuse` descriptor the backing files are registered on; -1 while passthrough was
    /// not agreed at INIT (then nothing is counted).
    private let device = Atomic<Int32>(-1)
    /// New backing files may be registered: cleared when the kernel refuses one with EPERM, so
    /// that the opens made before are still counted and released.
    private let registering = Atomic<Bool>(false)
    private let inodes = Mutex<[NodeID: Inode]>([:])
    let stats: TransportStats

    /// One node's opens in each mode, and its backing id while any passthrough open lasts.
    private struct Inode {
        var passthrough: Int32 = 0
        var cached: Int32 = 0
        var backingID: Int32 = 0
    }

    init(stats: TransportStats) { self.stats = stats }

    /// Passthrough was agreed at INIT on the connection `fd`.
    func enable(device fd: Int32) {
        device.store(fd, ordering: .relaxed)
        registering.store(true, ordering: .relaxed)
    }

    private var tracking: Bool { device.load(ordering: .relaxed) >= 0 }

    /// The backing id to answer an open of `node` with, or nil for a cached open; `fd` is the
    /// open's own descriptor (registered when the node has no backing yet), `eligible` whether
    /// the file may be passed through (see the type). Every call must be matched by one
    /// `release` with `passthrough` as returned (non-nil).
    func open(_ node: NodeID, fd: Int32, eligible: Bool) -> Int32? {
        guard tracking else { return nil }
        return inodes.withLock { (map) -> Int32? in
            var i = map[node] ?? Inode()
            defer { map[node] = i }
            if i.cached == 0 {
                if i.passthrough > 0 {
                    i.passthrough += 1
                    stats.passthroughOpens.add(1, ordering: .relaxed)
                    return i.backingID
                }
                if eligible && !Self.hasSetID(fd), let id = register(fd) {
                    i.passthrough = 1
                    i.backingID = id
                    stats.passthroughOpens.add(1, ordering: .relaxed)
                    return id
                }
            }
            i.cached += 1
            return nil
        }
    }

    /// The release of an open `open` answered with (`passthrough`: a backing id). The last
    /// passthrough open of a node closes its backing id.
    func release(_ node: NodeID, passthrough: Bool) {
        guard tracking else { return }
        inodes.withLock { map in
            guard var i = map[node] else { return }
            if passthrough {
                i.passthrough -= 1
                if i.passthrough <= 0 {
                    i.passthrough = 0
                    unregister(i.backingID)
                    i.backingID = 0
                }
            } else {
                i.cached = max(0, i.cached - 1)
            }
            if i.passthrough == 0 && i.cached == 0 { map[node] = nil } else { map[node] = i }
        }
    }

    /// A file with setuid or setgid is not passed through: a passthrough write runs as the
    /// daemon (`backing_file_write_iter` under the credentials saved at BACKING_OPEN), root
    /// with CAP_FSETID, so the kernel never clears the bits for a caller without it, and
    /// HANDLE_KILLPRIV_V2's write flag never reaches us (measured: a write by uid 65534 to a
    /// 04777 file kept 04777). Cached, its writes come here with the flag, as before. (A
    /// chmod u+s while the file is already open in passthrough is not caught.)
    private static func hasSetID(_ fd: Int32) -> Bool {
        guard let st = try? Sys.fstat(fd) else { return true }
        return st.st_mode & (S_ISUID | S_ISGID) != 0
    }

    /// `FUSE_DEV_IOC_BACKING_OPEN` (`_IOW(229, 1, struct fuse_backing_map)`): the new backing
    /// id of `fd`, or nil. Refused for a file on a filesystem already stacked
    /// (`s_stack_depth >= max_stack_depth`: ELOOP, a layer on overlayfs or FUSE) or without
    /// read_iter/write_iter (EOPNOTSUPP): that file stays cached. EPERM (no CAP_SYS_ADMIN in
    /// the initial user namespace after all) turns passthrough off for the rest of the mount.
    private func register(_ fd: Int32) -> Int32? {
        guard registering.load(ordering: .relaxed) else { return nil }
        let dev = device.load(ordering: .relaxed)
        // struct fuse_backing_map { int32_t fd; uint32_t flags; uint64_t padding; }
        var map: (Int32, UInt32, UInt64) = (fd, 0, 0)
        let id = ioctl(dev, UInt(0x4010_e501), &map)
        if id > 0 { return id }
        if errno == EPERM { registering.store(false, ordering: .relaxed) }
        return nil
    }

    /// `FUSE_DEV_IOC_BACKING_CLOSE` (`_IOW(229, 2, uint32_t)`): the kernel keeps the backing
    /// file while an inode still holds it, and frees it after.
    private func unregister(_ id: Int32) {
        guard id > 0 else { return }
        let dev = device.load(ordering: .relaxed)
        var backing = UInt32(bitPattern: id)
        _ = ioctl(dev, UInt(0x4004_e502), &backing)
    }
}
