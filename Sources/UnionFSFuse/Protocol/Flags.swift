/// Bits of the kernel's FUSE ABI (`include/uapi/linux/fuse.h`, 7.45), named as the kernel
/// names them without the prefix. The system header is 7.38: what came later (passthrough,
/// io_uring) is written here from the kernel's documentation of the ABI.
enum InitFlag {
    static let asyncRead: UInt64 = 1 << 0
    static let posixLocks: UInt64 = 1 << 1
    static let atomicOTrunc: UInt64 = 1 << 3
    static let exportSupport: UInt64 = 1 << 4
    static let bigWrites: UInt64 = 1 << 5
    static let dontMask: UInt64 = 1 << 6
    static let spliceWrite: UInt64 = 1 << 7
    static let spliceMove: UInt64 = 1 << 8
    static let spliceRead: UInt64 = 1 << 9
    static let flockLocks: UInt64 = 1 << 10
    static let autoInvalData: UInt64 = 1 << 12
    static let doReaddirplus: UInt64 = 1 << 13
    static let readdirplusAuto: UInt64 = 1 << 14
    static let asyncDIO: UInt64 = 1 << 15
    static let writebackCache: UInt64 = 1 << 16
    static let noOpenSupport: UInt64 = 1 << 17
    static let parallelDirops: UInt64 = 1 << 18
    static let handleKillpriv: UInt64 = 1 << 19
    static let posixACL: UInt64 = 1 << 20
    static let abortError: UInt64 = 1 << 21
    static let maxPages: UInt64 = 1 << 22
    static let cacheSymlinks: UInt64 = 1 << 23
    static let noOpendirSupport: UInt64 = 1 << 24
    static let explicitInvalData: UInt64 = 1 << 25
    static let handleKillprivV2: UInt64 = 1 << 28
    static let setxattrExt: UInt64 = 1 << 29
    /// `flags2` (the high 32 bits here) is valid, in both directions.
    static let initExt: UInt64 = 1 << 30
    static let securityCtx: UInt64 = 1 << 32
    static let createSuppGroup: UInt64 = 1 << 34
    static let directIOAllowMmap: UInt64 = 1 << 36
    static let passthrough: UInt64 = 1 << 37
    static let noExportSupport: UInt64 = 1 << 38
    static let overIOUring: UInt64 = 1 << 41
}

/// `fuse_open_out.open_flags`.
enum OpenReplyFlag {
    static let directIO: UInt32 = 1 << 0
    static let keepCache: UInt32 = 1 << 1
    static let nonseekable: UInt32 = 1 << 2
    static let cacheDir: UInt32 = 1 << 3
    static let stream: UInt32 = 1 << 4
    static let noflush: UInt32 = 1 << 5
    static let parallelDirectWrites: UInt32 = 1 << 6
    static let passthrough: UInt32 = 1 << 7
}

/// `fuse_setattr_in.valid`.
enum SetattrValid {
    static let mode: UInt32 = 1 << 0
    static let uid: UInt32 = 1 << 1
    static let gid: UInt32 = 1 << 2
    static let size: UInt32 = 1 << 3
    static let atime: UInt32 = 1 << 4
    static let mtime: UInt32 = 1 << 5
    static let fh: UInt32 = 1 << 6
    static let atimeNow: UInt32 = 1 << 7
    static let mtimeNow: UInt32 = 1 << 8
    static let lockOwner: UInt32 = 1 << 9
    static let ctime: UInt32 = 1 << 10
    /// With HANDLE_KILLPRIV_V2: the caller had no CAP_FSETID, clear setuid/setgid.
    static let killSUIDGID: UInt32 = 1 << 11
}

/// Flags of single requests.
enum RequestFlag {
    /// `fuse_getattr_in.getattr_flags`: `fh` is valid.
    static let getattrFH: UInt32 = 1 << 0
    /// `fuse_write_in.write_flags`: from the page cache (writeback), the handle is a guess.
    static let writeCache: UInt32 = 1 << 0
    /// `fuse_write_in.write_flags` with HANDLE_KILLPRIV_V2: clear setuid/setgid.
    static let writeKillSUIDGID: UInt32 = 1 << 2
    /// `fuse_open_in.open_flags` / `fuse_create_in.open_flags` with HANDLE_KILLPRIV_V2.
    static let openKillSUIDGID: UInt32 = 1 << 0
    /// `fuse_fsync_in.fsync_flags`.
    static let fsyncDataOnly: UInt32 = 1 << 0
}

/// `fuse_setxattr_in.setxattr_flags` (with SETXATTR_EXT).
enum SetxattrFlag {
    /// The caller setting a POSIX ACL is neither in the file's group nor privileged: clear setgid.
    static let aclKillSGID: UInt32 = 1 << 0
}

/// The sizes of the fixed parts of messages (the kernel's structs, 8-byte aligned).
enum WireSize {
    static let inHeader = 40
    static let outHeader = 16
    static let attr = 88
    static let entryOut = 40 + attr
    static let attrOut = 16 + attr
    static let openOut = 16
    static let writeOut = 8
    static let statfsOut = 80
    static let getxattrOut = 8
    static let lseekOut = 8
    static let initOut = 64
    static let dirent = 24
    static let statx = 256
    static let statxOut = 32 + statx
}
