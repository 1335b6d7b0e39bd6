import Glibc
import SystemPackage

extension UnionFileSystem {
    /// Opens a regular file for reading; the descriptor is the handle. Changes are refused here
    /// while the stack has no writable upper.
    public func open(_ id: UInt64, flags: Int32) throws(Errno) -> Int32 {
        let accessMode = flags & O_ACCMODE
        let wantsWrite = accessMode != O_RDONLY || flags & O_TRUNC != 0
        if wantsWrite && isReadOnly { throw .readOnlyFileSystem }
        if wantsWrite { return try openForWrite(id, flags: flags) }
        return try node(id).withTopEntry { (dir, name) throws(Errno) -> Int32 in
            guard let name else { throw .isDirectory }
            // Keep the caller's O_NONBLOCK/O_DIRECT/O_NOATIME; never create, never follow.
            let keep = O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC
            return try dir.openFile(name, O_RDONLY | (flags & keep))
        }
    }

    /// Closes a file handle.
    public func release(_ fd: Int32) {
        Sys.close(fd)
    }
}
