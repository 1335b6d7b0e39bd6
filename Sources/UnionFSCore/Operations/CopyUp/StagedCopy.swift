import Glibc
import SystemPackage

/// One copy, built in the workdir's staging directory and landed in the upper with one
/// `rename` (the mechanics of docs/SEMANTICS.md §3; when and what to copy is `CopyUp.swift`).
///
/// Under a temporary name: data (`DataCopy`: reflink, else only the data extents, so holes
/// stay holes; none when the trigger truncates), then owner, xattrs (`XattrCopy`: all but the
/// overlay's own), mode and times; `fsync` unless the mount is volatile; then one `rename`
/// (no replace) into the upper parent, whose times are put back as they were. A crash at any
/// point leaves junk only in the workdir, which the next mount clears.
struct StagedCopy {
    let stack: LayerStack
    let staging: LayerDir
    let sync: Bool

    /// Copies the entry `name` found at `entry` into `upperParent` and returns the new entry.
    /// With `truncate` a regular file's data is not copied (it is opened with `O_TRUNC`).
    /// Owner, mode and times are the source's now (one `fstat`), not as they were at lookup:
    /// nodes keep no `stat` (`HeldEntry`).
    func copy(_ entry: HeldEntry, name: borrowing FileName, into upperParent: LayerDir, truncate: Bool) throws(Errno) -> stat {
        let st: stat
        if let top = entry.layers.first { st = try top.dir.stat() } else { st = try entry.parentDir.stat(name) }
        guard st.st_mode & S_IFMT == entry.fileType else { throw .staleNFSFileHandle }
        return try Staging.withTemporaryName { (temp) throws(Errno) -> stat in
            do throws(Errno) {
                try build(st, from: entry, name: name, in: staging, at: temp, truncate: truncate)
            } catch {
                try? Staging.removeTree(in: staging, temp)
                throw error
            }
            return try land(temp, as: name, in: upperParent)
        }
    }

    /// Moves a finished staging entry to `name` in `upperParent` (replacing nothing), keeping the
    /// parent's times as they were.
    func land(_ temp: borrowing FileName, as name: borrowing FileName, in upperParent: LayerDir) throws(Errno) -> stat {
        let parentBefore = try upperParent.stat()
        do throws(Errno) {
            try Sys.renameat2(staging.fd, temp.cString, upperParent.fd, name.cString, Sys.renameNoReplace)
        } catch {
            try? Staging.removeTree(in: staging, temp)
            throw error
        }
        try? Sys.futimens(upperParent.fd, (parentBefore.st_atim, parentBefore.st_mtim))
        return try upperParent.stat(name)
    }

    /// Builds the copy of one entry at `temp` in `target` (the staging directory or a directory
    /// being built inside it).
    func build(_ st: stat, from entry: HeldEntry, name: borrowing FileName,
               in target: LayerDir, at tempName: borrowing FileName, truncate: Bool) throws(Errno) {
        let staging = target
        let temp = tempName.cString
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let src = try entry.parentDir.openFile(name, O_RDONLY | O_NONBLOCK)
            let dst = try staging.openFile(tempName, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if !truncate { try DataCopy.copy(from: src, to: dst, size: Int64(st.st_size), durable: sync) }
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            try copyXattrs(from: src, to: dst)
            try Sys.fchmod(dst.rawValue, st.st_mode & 0o7777)
            try Sys.futimens(dst.rawValue, (st.st_atim, st.st_mtim))
            if sync { try Sys.fsync(dst.rawValue) }
        case S_IFDIR:
            try Sys.mkdirat(staging.fd, temp, 0o700)
            let dst = try staging.openChild(tempName)
            let src: LayerDir
            if let top = entry.layers.first { src = top.dir } else { src = try entry.parentDir.openChild(name) }
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            try copyXattrs(from: src.descriptor, to: dst.descriptor)
            try Sys.fchmod(dst.fd, st.st_mode & 0o7777)
            try Sys.futimens(dst.fd, (st.st_atim, st.st_mtim))
        case S_IFLNK:
            var target = try entry.parentDir.readlink(name)
            target.append(0)
            try target.withUnsafeBufferPointer { (p) throws(Errno) in
                try p.withMemoryRebound(to: CChar.self) { (c) throws(Errno) in
                    try Sys.symlinkat(c.baseAddress!, staging.fd, temp)
                }
            }
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            try copyXattrsByPath(fromDir: entry.parentDir, name, to: staging, tempName)
            try Sys.utimensat(staging.fd, temp, (st.st_atim, st.st_mtim), AT_SYMLINK_NOFOLLOW)
        default:
            try Sys.mknodat(staging.fd, temp, st.st_mode, st.st_rdev)
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            try copyXattrsByPath(fromDir: entry.parentDir, name, to: staging, tempName)
            try Sys.fchmodat(staging.fd, temp, st.st_mode & 0o7777)
            try Sys.utimensat(staging.fd, temp, (st.st_atim, st.st_mtim), AT_SYMLINK_NOFOLLOW)
        }
    }

    /// Copies the xattrs of one open file or directory to another.
    private func copyXattrs(from src: borrowing Descriptor, to dst: borrowing Descriptor) throws(Errno) {
        try XattrCopy.copyAll(from: src, to: dst, rule: stack.overlayXattrs)
    }

    /// Copies xattrs of a symlink or special file (no readable descriptor) through
    /// `/proc/self/fd` paths of `O_PATH` descriptors.
    private func copyXattrsByPath(fromDir dir: LayerDir, _ name: borrowing FileName,
                                  to staging: LayerDir, _ temp: borrowing FileName) throws(Errno) {
        try XattrCopy.copyAll(fromPath: try dir.openFile(name, O_PATH), toPath: try staging.openFile(temp, O_PATH),
                              rule: stack.overlayXattrs)
    }
}
