import Glibc

/// The fixed parts of replies, written in the kernel's layouts by `WireWriter`. Each writes
/// exactly `WireSize.<name>` bytes.
enum ReplyLayout {
    /// A cache timeout in seconds as the kernel's (seconds, nanoseconds), clamped.
    static func timeout(_ t: Double) -> (UInt64, UInt32) {
        guard t > 0, t.isFinite else { return (0, 0) }
        if t >= 1.8e19 { return (UInt64.max, 999_999_999) }
        let s = UInt64(t)
        return (s, UInt32(min(999_999_999, max(0, (t - Double(s)) * 1e9))))
    }

    /// `fuse_attr` (88 bytes) of `st`.
    static func attr(_ st: stat, _ w: inout WireWriter) {
        w.put(UInt64(st.st_ino))
        w.put(UInt64(bitPattern: Int64(st.st_size)))
        w.put(UInt64(bitPattern: Int64(st.st_blocks)))
        w.put(UInt64(bitPattern: Int64(st.st_atim.tv_sec)))
        w.put(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)))
        w.put(UInt64(bitPattern: Int64(st.st_ctim.tv_sec)))
        w.put(UInt32(truncatingIfNeeded: st.st_atim.tv_nsec))
        w.put(UInt32(truncatingIfNeeded: st.st_mtim.tv_nsec))
        w.put(UInt32(truncatingIfNeeded: st.st_ctim.tv_nsec))
        w.put(UInt32(st.st_mode))
        w.put(UInt32(truncatingIfNeeded: st.st_nlink))
        w.put(UInt32(st.st_uid))
        w.put(UInt32(st.st_gid))
        w.put(UInt32(truncatingIfNeeded: st.st_rdev))
        w.put(UInt32(truncatingIfNeeded: st.st_blksize))
        w.put(UInt32(0))  // flags
    }

    /// `fuse_entry_out` (128 bytes): `node` 0 is a negative entry the kernel caches.
    static func entry(node: UInt64, _ st: stat, timeout: Double, _ w: inout WireWriter) {
        let (s, ns) = Self.timeout(timeout)
        w.put(node)
        w.put(UInt64(node == 0 ? 0 : 1))  // generation: ids are never reused in a mount
        w.put(s); w.put(s)
        w.put(ns); w.put(ns)
        attr(st, &w)
    }

    /// `fuse_attr_out` (104 bytes).
    static func attrOut(_ st: stat, timeout: Double, _ w: inout WireWriter) {
        let (s, ns) = Self.timeout(timeout)
        w.put(s); w.put(ns); w.put(UInt32(0))
        attr(st, &w)
    }

    /// `fuse_open_out` (16 bytes).
    static func open(fh: UInt64, flags: UInt32, backingID: Int32, _ w: inout WireWriter) {
        w.put(fh); w.put(flags); w.put(backingID)
    }

    /// `fuse_statfs_out` (80 bytes).
    static func statfs(_ s: statvfs, _ w: inout WireWriter) {
        w.put(UInt64(s.f_blocks)); w.put(UInt64(s.f_bfree)); w.put(UInt64(s.f_bavail))
        w.put(UInt64(s.f_files)); w.put(UInt64(s.f_ffree))
        w.put(UInt32(truncatingIfNeeded: s.f_bsize)); w.put(UInt32(truncatingIfNeeded: s.f_namemax))
        w.put(UInt32(truncatingIfNeeded: s.f_frsize)); w.put(UInt32(0))
        w.zero(24)
    }

    /// The size of a `fuse_dirent` record for a name of `nameLength` bytes (8-aligned).
    static func direntSize(nameLength: Int) -> Int { (WireSize.dirent + nameLength + 7) & ~7 }

    /// `fuse_dirent` for readdir: `type` is the `d_type` (mode >> 12).
    static func dirent(ino: UInt64, next: UInt64, type: UInt32, name: UnsafeRawBufferPointer, _ w: inout WireWriter) {
        w.put(ino); w.put(next); w.put(UInt32(name.count)); w.put(type)
        w.put(bytes: name.baseAddress!, count: name.count)
        w.align8()
    }

    /// `fuse_statx_out` (288 bytes) from a `stat`: the basic fields, as statx reports them.
    static func statx(_ st: stat, timeout: Double, _ w: inout WireWriter) {
        let (s, ns) = Self.timeout(timeout)
        w.put(s); w.put(ns); w.put(UInt32(0)); w.zero(16)
        w.put(UInt32(0x7ff))  // STATX_BASIC_STATS
        w.put(UInt32(truncatingIfNeeded: st.st_blksize))
        w.put(UInt64(0))  // attributes
        w.put(UInt32(truncatingIfNeeded: st.st_nlink)); w.put(UInt32(st.st_uid)); w.put(UInt32(st.st_gid))
        w.put(UInt16(truncatingIfNeeded: st.st_mode)); w.put(UInt16(0))
        w.put(UInt64(st.st_ino)); w.put(UInt64(bitPattern: Int64(st.st_size)))
        w.put(UInt64(bitPattern: Int64(st.st_blocks))); w.put(UInt64(0))  // attributes_mask
        for t in [st.st_atim, timespec(), st.st_ctim, st.st_mtim] {  // atime, btime, ctime, mtime
            w.put(Int64(t.tv_sec)); w.put(UInt32(truncatingIfNeeded: t.tv_nsec)); w.put(Int32(0))
        }
        w.put(UInt32(truncatingIfNeeded: (st.st_rdev >> 8) & 0xfff | (st.st_rdev >> 32) & ~0xfff))
        w.put(UInt32(truncatingIfNeeded: st.st_rdev & 0xff | (st.st_rdev >> 12) & ~0xff))
        w.put(UInt32(truncatingIfNeeded: (st.st_dev >> 8) & 0xfff | (st.st_dev >> 32) & ~0xfff))
        w.put(UInt32(truncatingIfNeeded: st.st_dev & 0xff | (st.st_dev >> 12) & ~0xff))
        w.zero(112)
    }
}
