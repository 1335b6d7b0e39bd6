import CAttr
import CLinux
import Glibc
import SystemPackage

/// Copy-up: makes a lower file or directory exist in the upper, as docs/SEMANTICS.md §3 says.
///
/// The copy is built in the workdir's staging directory under a temporary name: data (sparse
/// aware: reflink, else `copy_file_range` over the data extents only, so holes stay holes), then
/// owner, xattrs (except `*.overlay.*`), mode and times; it is made durable with `fsync` unless
/// the mount is volatile; and one `rename` lands it in the upper. A crash at any point leaves
/// junk only in the workdir, which the next mount clears. The upper parent's times are restored
/// afterwards so the copy-up itself is not a change of the parent.
struct CopyUp {
    let stack: LayerStack
    let staging: LayerDir
    let sync: Bool

    /// Copies the entry `name` found at `entry` into `upperParent` and returns the new entry.
    /// With `truncate` a regular file's data is not copied (it is opened with `O_TRUNC`).
    func copy(_ entry: ResolvedEntry, name: borrowing FileName, into upperParent: LayerDir, truncate: Bool) throws(Errno) -> stat {
        try Staging.withTemporaryName { (temp) throws(Errno) -> stat in
            do throws(Errno) {
                try build(entry.stat, from: entry, name: name, in: staging, at: temp, truncate: truncate)
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
    func build(_ st: stat, from entry: ResolvedEntry, name: borrowing FileName,
               in target: LayerDir, at tempName: borrowing FileName, truncate: Bool) throws(Errno) {
        let staging = target
        let temp = tempName.cString
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let src = try entry.parentDir.openFile(name, O_RDONLY | O_NONBLOCK)
            defer { Sys.close(src) }
            let dst = try Sys.openat(staging.fd, temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            defer { Sys.close(dst) }
            if !truncate { try Self.copyData(from: src, to: dst, size: Int64(st.st_size)) }
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            copyXattrs(fromFD: src, toFD: dst)
            try Sys.fchmod(dst, st.st_mode & 0o7777)
            try Sys.futimens(dst, (st.st_atim, st.st_mtim))
            if sync { try Sys.fsync(dst) }
        case S_IFDIR:
            try Sys.mkdirat(staging.fd, temp, 0o700)
            let dst = try staging.openChild(tempName)
            let src: LayerDir
            if let top = entry.layers.first { src = top.dir } else { src = try entry.parentDir.openChild(name) }
            try Sys.fchownat(staging.fd, temp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW)
            copyXattrs(fromFD: src.fd, toFD: dst.fd)
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

    /// Copies the data of `size` bytes: a reflink where the filesystem shares extents, otherwise
    /// `copy_file_range` over each data extent (found with `SEEK_DATA`/`SEEK_HOLE`), falling back
    /// to read/write where the kernel cannot copy between these filesystems. Holes stay holes.
    static func copyData(from src: Int32, to dst: Int32, size: Int64) throws(Errno) {
        guard size > 0 else { return }
        if unionfs_ficlone(dst, src) == 0 { return }
        var pos: Int64 = 0
        while pos < size {
            let start: Int64
            do { start = try Sys.lseek(src, pos, unionfs_SEEK_DATA) }
            catch Errno(rawValue: ENXIO) { break }       // only a hole is left
            catch .invalidArgument { start = pos }       // no SEEK_DATA here: copy everything
            if start >= size { break }
            let end = min(size, (try? Sys.lseek(src, start, unionfs_SEEK_HOLE)) ?? size)
            try copyRange(from: src, to: dst, start: start, end: end)
            pos = end
        }
        try Sys.ftruncate(dst, size)
    }

    private static func copyRange(from src: Int32, to dst: Int32, start: Int64, end: Int64) throws(Errno) {
        var inOff = start, outOff = start
        while inOff < end {
            let n: Int
            do {
                n = try Sys.copyFileRange(src, &inOff, dst, &outOff, Int(min(end - inOff, 1 << 30)))
            } catch where [.improperLink, .invalidArgument, .notSupported, .noFunction, .notSupportedOnSocket].contains(error) {
                try copyByReading(from: src, to: dst, start: inOff, end: end)
                return
            }
            if n == 0 { return }
        }
    }

    private static func copyByReading(from src: Int32, to dst: Int32, start: Int64, end: Int64) throws(Errno) {
        let size = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buf.deallocate() }
        var off = start
        while off < end {
            let n = try Sys.pread(src, UnsafeMutableRawBufferPointer(rebasing: buf[0..<Int(min(Int64(size), end - off))]), off)
            if n == 0 { return }
            var done = 0
            while done < n {
                done += try Sys.pwrite(dst, UnsafeRawBufferPointer(rebasing: buf[done..<n]), off + Int64(done))
            }
            off += Int64(n)
        }
    }

    /// Copies xattrs between two open files with libattr, leaving out `*.overlay.*`.
    private func copyXattrs(fromFD src: Int32, toFD dst: Int32) {
        _ = attr_copy_fd(nil, src, nil, dst, { name, _ in
            guard let name else { return 0 }
            return isOverlayXattr(name) ? 0 : 1
        }, nil)
    }

    /// Copies xattrs of a symlink or special file (no readable descriptor) through
    /// `/proc/self/fd` paths of `O_PATH` descriptors.
    private func copyXattrsByPath(fromDir dir: LayerDir, _ name: borrowing FileName,
                                  to staging: LayerDir, _ temp: borrowing FileName) throws(Errno) {
        let src = try dir.openFile(name, O_PATH)
        defer { Sys.close(src) }
        let dst = try staging.openFile(temp, O_PATH)
        defer { Sys.close(dst) }
        try withProcFDPath(src) { (srcPath) throws(Errno) in
            try withProcFDPath(dst) { (dstPath) throws(Errno) in
                try XattrCopy.copyAll(from: srcPath, to: dstPath)
            }
        }
    }
}

/// True for `trusted.overlay.*` and `user.overlay.*`: never copied up, never shown.
func isOverlayXattr(_ name: UnsafePointer<CChar>) -> Bool {
    strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0
}

enum XattrCopy {
    /// Copies every xattr but the overlay ones from one path to another (paths follow the last
    /// component: meant for `/proc/self/fd/N`). Names a filesystem refuses are skipped.
    static func copyAll(from src: UnsafePointer<CChar>, to dst: UnsafePointer<CChar>) throws(Errno) {
        let need = (try? Sys.pathListxattr(src, UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
        guard need > 0 else { return }
        var list = [CChar](repeating: 0, count: need)
        let n = try Errno.lift { try list.withUnsafeMutableBytes { b in try Sys.pathListxattr(src, b) } }
        var start = 0
        while start < n {
            let end = list[start..<n].firstIndex(of: 0) ?? n
            try list.withUnsafeBufferPointer { (p) throws(Errno) in
                let name = p.baseAddress! + start
                if isOverlayXattr(name) { return }
                let size = (try? Sys.pathGetxattr(src, name, UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
                var value = [UInt8](repeating: 0, count: max(size, 1))
                guard let got = try? Errno.lift({ try value.withUnsafeMutableBytes { b in try Sys.pathGetxattr(src, name, b) } })
                else { return }
                try? value.withUnsafeBytes { b in
                    try Sys.pathSetxattr(dst, name, UnsafeRawBufferPointer(rebasing: b[0..<got]), 0)
                }
            }
            start = end + 1
        }
    }
}
