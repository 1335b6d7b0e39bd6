/// The kernel's FUSE opcodes (`include/uapi/linux/fuse.h`, protocol 7.45), by number.
enum Opcode: UInt32, CaseIterable, Sendable {
    case lookup = 1, forget = 2, getattr = 3, setattr = 4, readlink = 5, symlink = 6
    case mknod = 8, mkdir = 9, unlink = 10, rmdir = 11, rename = 12, link = 13
    case open = 14, read = 15, write = 16, statfs = 17, release = 18
    case fsync = 20, setxattr = 21, getxattr = 22, listxattr = 23, removexattr = 24
    case flush = 25, `init` = 26, opendir = 27, readdir = 28, releasedir = 29, fsyncdir = 30
    case getlk = 31, setlk = 32, setlkw = 33, access = 34, create = 35, interrupt = 36
    case bmap = 37, destroy = 38, ioctl = 39, poll = 40, notifyReply = 41, batchForget = 42
    case fallocate = 43, readdirplus = 44, rename2 = 45, lseek = 46, copyFileRange = 47
    case setupMapping = 48, removeMapping = 49, syncfs = 50, tmpfile = 51, statx = 52
    case copyFileRange64 = 53

    /// The kernel's name without the `FUSE_` prefix (as `stats` and the `-d` trace print it).
    var label: String {
        switch self {
        case .notifyReply: return "NOTIFY_REPLY"
        case .batchForget: return "BATCH_FORGET"
        case .copyFileRange: return "COPY_FILE_RANGE"
        case .copyFileRange64: return "COPY_FILE_RANGE_64"
        case .setupMapping: return "SETUPMAPPING"
        case .removeMapping: return "REMOVEMAPPING"
        default: return String(describing: self).uppercased()
        }
    }
}

/// The codes of messages the daemon sends unasked (`fuse_notify_code`): the `error` field of
/// their out header, with `unique` 0.
enum NotifyCode: Int32, Sendable {
    case poll = 1, invalInode = 2, invalEntry = 3, store = 4, retrieve = 5, delete = 6
    case resend = 7, incEpoch = 8, prune = 9
}
