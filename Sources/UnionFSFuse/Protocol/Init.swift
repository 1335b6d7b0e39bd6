/// The INIT handshake of our own transport: what the kernel offers, what this filesystem asks
/// for, and the reply that says so.
///
/// Asked for when offered: parallel lookups and readdir in one directory (PARALLEL_DIROPS),
/// setuid/setgid cleared by the daemon on the flags the kernel sends (HANDLE_KILLPRIV_V2: no
/// GETATTR or `security.capability` GETXATTR per write; off with the writeback cache, where
/// writes reach the daemon without their caller), O_TRUNC in OPEN (ATOMIC_O_TRUNC), readdirplus
/// for every chunk of a listing (the kernel's auto mode only with `readdirplus=auto`: under it
/// a chunk past the first goes without attributes and every name in it costs a LOOKUP when
/// stat'ed, as `find` and `ls -l` do), cached symlinks, 1 MiB requests (MAX_PAGES), directories opened
/// by the kernel itself (the daemon answers OPENDIR `ENOSYS` once), page cache dropped only when
/// told (EXPLICIT_INVAL_DATA: every change goes through the mount), SETXATTR_EXT.
///
/// POSIX_ACL unless `noacl`: without it the kernel checks permissions (`default_permissions`)
/// from the mode bits alone, so an ACL that grants access is ignored where kernel overlayfs
/// honours it; with it the kernel reads each inode's ACL once (a GETXATTR, then cached) when a
/// caller other than the owner needs the group class, and `ls -l` finds `system.posix_acl_access`
/// in that cache. With it DONT_MASK: the umask is the daemon's to apply, so that a directory's
/// default ACL, not the umask, limits what is created in it, as POSIX and kernel overlayfs do.
///
/// Not asked for: the locks (the kernel keeps them locally, as with libfuse); splice (our reads
/// and writes are in memory).
struct InitAgreement: Equatable {
    /// The protocol minor both speak.
    var minor: UInt32
    /// Flags of the reply (`flags2` in the high half).
    var flags: UInt64
    var maxReadahead: UInt32
    var maxWrite: UInt32
    var maxPages: UInt16
    /// 1 when passthrough was agreed (0 otherwise): backing files must be on a filesystem that
    /// is not stacked itself (the kernel refuses one whose `s_stack_depth` reaches this), and
    /// our mount then counts as one level, so kernel overlayfs (at most 2) can still stack on it.
    var maxStackDepth: UInt32 = 0

    /// The largest request the kernel will send (a WRITE of `maxWrite` bytes with its headers).
    var requestBufferSize: Int { Int(maxWrite) + 4096 }

    var writebackCache: Bool { flags & InitFlag.writebackCache != 0 }
    var killPrivilegesV2: Bool { flags & InitFlag.handleKillprivV2 != 0 }
    var setxattrExt: Bool { flags & InitFlag.setxattrExt != 0 }
    var daemonAppliesUmask: Bool { flags & InitFlag.dontMask != 0 }
    var passthrough: Bool { flags & InitFlag.passthrough != 0 }

    /// The oldest kernel protocol this transport speaks (7.31, Linux 5.4): the layouts it
    /// decodes are the ones from there on.
    static let oldestMinor: UInt32 = 31
    static let newestMinor: UInt32 = 45
    /// 1 MiB requests: 256 pages.
    static let pages: UInt16 = 256

    /// What to agree to `offer`; `writeback`: the mount asks for the writeback cache.
    /// nil when the kernel's major is not 7 or its minor older than `oldestMinor`.
    static func negotiate(_ offer: InitIn, writeback: Bool, passthrough: Bool = false, uring: Bool = false,
                          readdirplusAuto: Bool = false, posixACL: Bool = true) -> InitAgreement? {
        guard offer.major == 7, offer.minor >= oldestMinor else { return nil }
        var want = InitFlag.asyncRead | InitFlag.bigWrites | InitFlag.atomicOTrunc | InitFlag.parallelDirops
            | InitFlag.doReaddirplus | InitFlag.cacheSymlinks | InitFlag.maxPages
            | InitFlag.explicitInvalData | InitFlag.setxattrExt | InitFlag.noOpendirSupport
        if readdirplusAuto { want |= InitFlag.readdirplusAuto }
        if posixACL { want |= InitFlag.posixACL | InitFlag.dontMask }
        if writeback { want |= InitFlag.writebackCache } else { want |= InitFlag.handleKillprivV2 }
        if passthrough && !writeback { want |= InitFlag.passthrough }
        if uring { want |= InitFlag.overIOUring }
        var flags = want & offer.flags
        if offer.flags & InitFlag.initExt != 0 { flags |= InitFlag.initExt } else { flags &= 0xffff_ffff }
        let pages = flags & InitFlag.maxPages != 0 ? pages : 32
        return InitAgreement(minor: min(offer.minor, newestMinor), flags: flags, maxReadahead: offer.maxReadahead,
                             maxWrite: UInt32(pages) * 4096, maxPages: pages,
                             maxStackDepth: flags & InitFlag.passthrough != 0 ? 1 : 0)
    }

    /// `fuse_init_out` (64 bytes).
    func encode(_ w: inout WireWriter) {
        w.put(UInt32(7)); w.put(minor); w.put(maxReadahead); w.put(UInt32(truncatingIfNeeded: flags))
        w.put(UInt16(64)); w.put(UInt16(48))  // max_background, congestion_threshold
        w.put(maxWrite)
        w.put(UInt32(1))  // time_gran: nanoseconds
        w.put(maxPages); w.put(UInt16(0))  // map_alignment
        w.put(UInt32(truncatingIfNeeded: flags >> 32))
        w.put(maxStackDepth)
        w.zero(24)  // request_timeout, unused
    }
}
