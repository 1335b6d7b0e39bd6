import CLinux
import Glibc
import SystemPackage

/// The data of a copied-up regular file.
enum DataCopy {
    /// Copies the data of `size` bytes: a reflink where the filesystem shares extents, otherwise
    /// `copy_file_range` over each data extent (found with `SEEK_DATA`/`SEEK_HOLE`), falling back
    /// to `sendfile` between two filesystems (and to read/write where the source cannot be
    /// spliced). Holes stay holes.
    static func copy(from source: borrowing Descriptor, to target: borrowing Descriptor, size: Int64) throws(Errno) {
        guard size > 0 else { return }
        let src = source.rawValue, dst = target.rawValue
        if unionfs_ficlone(dst, src) == 0 { return }
        var pos: Int64 = 0
        while pos < size {
            let start: Int64
            do { start = try Sys.lseek(src, pos, unionfs_SEEK_DATA) }
            catch Errno(rawValue: ENXIO) { break }       // only a hole is left
            catch .invalidArgument { start = pos }       // no SEEK_DATA here: copy everything
            if start >= size { break }
            let end = min(size, (try? Sys.lseek(src, start, unionfs_SEEK_HOLE)) ?? size)
            try copyRange(from: source, to: target, start: start, end: end)
            pos = end
        }
        try Sys.ftruncate(dst, size)
    }

    /// How a range is copied: the first way these two filesystems accept.
    /// - `copy_file_range`: within one filesystem (which may share or copy the blocks itself).
    /// - `sendfile` between two filesystems, where `copy_file_range` says `EXDEV`: one copy in
    ///   the kernel, as kernel overlayfs copies up (a splice). Reading into a buffer and writing
    ///   it copies every byte twice and maps a 1 MiB buffer: for 256 MiB from the disk's ext4
    ///   to another ext4, the daemon's CPU time was 80-98 ms with `sendfile` against 90-106 ms.
    /// - read and write, where the source cannot be spliced.
    private enum Way { case copyFileRange, sendfile, readWrite }

    private static func copyRange(from source: borrowing Descriptor, to target: borrowing Descriptor,
                                  start: Int64, end: Int64) throws(Errno) {
        let src = source.rawValue, dst = target.rawValue
        var way = Way.copyFileRange
        var inOff = start
        while inOff < end {
            let count = Int(min(end - inOff, 1 << 30))
            let n: Int
            do {
                switch way {
                case .copyFileRange:
                    var outOff = inOff
                    n = try Sys.copyFileRange(src, &inOff, dst, &outOff, count)
                case .sendfile:
                    n = try Sys.sendfile(dst, src, &inOff, count)   // writes at the target's position
                case .readWrite:
                    return try copyByReading(from: source, to: target, start: inOff, end: end)
                }
            } catch where way == .copyFileRange
                        && [.improperLink, .invalidArgument, .notSupported, .noFunction, .notSupportedOnSocket].contains(error) {
                way = .sendfile
                _ = try Sys.lseek(dst, inOff, SEEK_SET)
                continue
            } catch where way == .sendfile && [.invalidArgument, .noFunction, .notSupported].contains(error) {
                way = .readWrite
                continue
            }
            if n == 0 { return }
        }
    }

    private static func copyByReading(from source: borrowing Descriptor, to target: borrowing Descriptor,
                                      start: Int64, end: Int64) throws(Errno) {
        let src = source.rawValue, dst = target.rawValue
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

}
