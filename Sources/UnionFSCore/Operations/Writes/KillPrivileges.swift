import Glibc
import SystemPackage

extension UnionFileSystem {
    /// The kernel leaves clearing setuid and setgid to the daemon when the mount agreed to
    /// `FUSE_HANDLE_KILLPRIV_V2` (the FUSE transport's INIT), which spares a GETATTR before every chown and a
    /// `security.capability` GETXATTR before every write. A write,
    /// a truncation or an `O_TRUNC` open by a caller without `CAP_FSETID` must then clear
    /// setuid, and setgid where group execute is set, of a regular file, as the kernel's
    /// `should_remove_suid` does. FUSE tells the daemon the caller's uid, not its capabilities,
    /// so "without `CAP_FSETID`" is taken as "not root". A chown needs nothing: the chown of the
    /// upper file clears them itself (and `security.capability` goes with the daemon's own write).
    /// Off with the writeback cache, where writes reach the daemon without their caller.
    var clearsSetIDItself: Bool { killPrivileges.load(ordering: .relaxed) }

    /// The mode a regular file keeps once setuid and setgid are cleared for a caller without
    /// `CAP_FSETID`, or nil when nothing is to clear. Setgid without group execute (a locking
    /// mark) stays when the caller is in the file's group, as in `setattr_should_drop_sgid`.
    static func modeWithoutSetID(_ st: stat, callerInGroup: (gid_t) -> Bool) -> mode_t? {
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        var kill: mode_t = 0
        if st.st_mode & S_ISUID != 0 { kill |= S_ISUID }
        if st.st_mode & S_ISGID != 0 && (st.st_mode & S_IXGRP != 0 || !callerInGroup(st.st_gid)) { kill |= S_ISGID }
        return kill == 0 ? nil : st.st_mode & 0o7777 & ~kill
    }

    /// The mode the file `id` must get before `caller` (not root: nil otherwise) changes its
    /// data, or nil when it keeps its own. `inGroup` answers whether the caller is in a group.
    public func modeClearingSetID(_ id: NodeID, caller: uid_t, inGroup: (gid_t) -> Bool) throws(Errno) -> mode_t? {
        guard caller != 0, clearsSetIDItself else { return nil }
        return Self.modeWithoutSetID(try getattr(id), callerInGroup: inGroup)
    }

    /// Clears setuid and setgid of the file `id` before `caller` writes to it or truncates it
    /// on open.
    public func clearSetID(_ id: NodeID, caller: uid_t, inGroup: (gid_t) -> Bool) throws(Errno) {
        guard let mode = try modeClearingSetID(id, caller: caller, inGroup: inGroup) else { return }
        var c = AttributeChanges()
        c.mode = mode
        _ = try setattr(id, c, fd: nil)
    }
}
