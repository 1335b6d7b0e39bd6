import Glibc
import SystemPackage

/// Where a tree keeps its files' owners and modes, for diffs and commits.
///
/// A store unpacked without root cannot chown: it keeps each regular file's and directory's
/// owner and mode in `user.containers.override_stat` ("uid:gid:0mode", the containers/storage
/// convention), and a mount over it with `xattr_permissions=2` shows and changes them there.
/// A commit of such a tree must put those owners and modes back into the tar headers, so that
/// it equals what root would have written.
public enum OwnerRecords: Sendable, Equatable {
    /// On the files themselves (the kernel's way).
    case files
    /// In `user.containers.override_stat` where a file has one. A file without one (a symlink,
    /// FIFO or socket, which cannot carry user xattrs, or a file the user made) belongs to the
    /// user `uid:gid` who unpacked and changed the tree: that user stands for root, as it does
    /// as root of its own user namespace, so its ids are recorded as 0.
    case overrideXattr(uid: uid_t, gid: gid_t)

    /// The override xattr's name.
    static let xattrName = "user.containers.override_stat"

    /// `st` with the recorded owner and mode of the entry `name` in `dir`.
    package func recorded(_ st: stat, in dir: LayerDir, _ name: borrowing FileName) -> stat {
        guard case .overrideXattr(let uid, let gid) = self else { return st }
        var s = st
        let type = st.st_mode & S_IFMT
        // The kernel allows user.* xattrs on regular files and directories only.
        if type == S_IFREG || type == S_IFDIR,
           let bytes = EntryXattrs.value(in: dir, name, Self.xattrName), let o = Self.parse(bytes) {
            s.st_uid = o.uid
            s.st_gid = o.gid
            s.st_mode = type | (o.mode & 0o7777)
            return s
        }
        if s.st_uid == uid { s.st_uid = 0 }
        if s.st_gid == gid { s.st_gid = 0 }
        return s
    }

    /// Parses "uid:gid:mode" (mode in octal), as fuse-overlayfs and containers/storage write it.
    package static func parse(_ bytes: some Collection<UInt8>) -> (uid: uid_t, gid: gid_t, mode: mode_t)? {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: ":")
        guard parts.count >= 3, let u = UInt32(parts[0]), let g = UInt32(parts[1]),
              let m = UInt32(parts[2], radix: 8) else { return nil }
        return (u, g, m)
    }
}
