import Glibc

/// The `C` rule of docs/SEMANTICS.md §4: when does an entry present in both trees count as changed.
enum MetadataComparison {
    /// True when mode (type and permission bits), uid, gid or rdev differ, or, for
    /// non-directories, size or mtime. Directory size and mtime never count: they change
    /// whenever a child does, and the child is reported itself.
    static func differs(_ a: stat, _ b: stat) -> Bool {
        if a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid || a.st_rdev != b.st_rdev {
            return true
        }
        if a.st_mode & S_IFMT == S_IFDIR { return false }
        return a.st_size != b.st_size || !sameTime(a.st_mtim, b.st_mtim)
    }

    /// Times are equal when equal, or in the same second with either side at 0 ns: tar and
    /// some filesystems keep whole seconds only.
    static func sameTime(_ a: timespec, _ b: timespec) -> Bool {
        if a.tv_sec != b.tv_sec { return false }
        return a.tv_nsec == b.tv_nsec || a.tv_nsec == 0 || b.tv_nsec == 0
    }

    /// True when the two regular files carry different `security.capability` bytes (a file
    /// given or stripped of capabilities is changed even with the same mode and times).
    static func capabilitiesDiffer(_ a: stat, in aDir: LayerDir, _ aName: borrowing FileName,
                                   _ bDir: LayerDir, _ bName: borrowing FileName) -> Bool {
        guard a.st_mode & S_IFMT == S_IFREG else { return false }
        return EntryXattrs.value(in: aDir, aName, "security.capability")
            != EntryXattrs.value(in: bDir, bName, "security.capability")
    }
}
