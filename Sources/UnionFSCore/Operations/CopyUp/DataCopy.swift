import CLinux
import Glibc
import SystemPackage

/// The data of a copied-up regular file.
enum DataCopy {
    /// Copies the data of `size` bytes: a reflink where the filesystem shares extents, otherwise
    /// `copy_file_range` over each data extent (found with `SEEK_DATA`/`SEEK_HOLE`), falling back
    /// to `sendfile` between two filesystems (and to read/write where the source cannot be
    /// spliced). Holes stay holes. With `durable` (an `fsync` of the target follows), the
    /// writeback of the copy starts as it goes (`EarlyWriteback`).
    static func copy(from source: borrowing Descriptor, to target: borrowing Descriptor, size: Int64,
                     durable: Bool) throws(Errno) {
        guard size > 0 else { return }
        let src = source.rawValue, dst = target.rawValue
        if unionfs_ficlone(dst, src) == 0 { return }
        var writeback = EarlyWriteback(fd: dst, enabled: durable)
        var pos: Int64 = 0
        while pos < size {
            let start: Int64
            do { start = try Sys.lseek(src, pos, unionfs_SEEK_DATA) }
            catch Errno(rawValue: ENXIO) { break }       // only a hole is left
            catch .invalidArgument { start = pos }       // no SEEK_DATA here: copy everything
            if start >= size { break }
            let end = min(size, (try? Sys.lseek(src, start, unionfs_SEEK_HOLE)) ?? size)
            try copyRange(from: source, to: target, start: start, end: end, writeback: &writeback)
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

    /// Hands the copy to writeback every `chunk` bytes (`sync_file_range`, which does not wait),
    /// so that the disk writes the first chunks while the next ones are copied, and the `fsync`
    /// after the copy waits for the last chunk rather than for the whole file. Kernel overlayfs
    /// copies all, then syncs all. 256 MiB from the disk's ext4 to a journaled ext4 (5
    /// interleaved rounds, copy and `fsync`): 0.31-0.40 s in 8 MiB chunks against 0.42-0.75 s
    /// in one piece, the kernel's copy-up 0.43-0.75 s. A file under one chunk is not touched.
    private struct EarlyWriteback {
        static let chunk: Int64 = 8 << 20
        let fd: Int32
        let enabled: Bool
        /// Where the copy not yet handed to writeback starts.
        private var from: Int64 = 0

        init(fd: Int32, enabled: Bool) { self.fd = fd; self.enabled = enabled }

        /// The most one copy call should take: a chunk when writeback follows the copy.
        var callLimit: Int { enabled ? Int(Self.chunk) : 1 << 30 }

        /// The target now holds the copy up to `end`.
        mutating func copied(upTo end: Int64) {
            guard enabled, end - from >= Self.chunk else { return }
            try? Sys.startWriteback(fd, from, end - from)   // a hint: the fsync decides
            from = end
        }
    }

    private static func copyRange(from source: borrowing Descriptor, to target: borrowing Descriptor,
                                  start: Int64, end: Int64, writeback: inout EarlyWriteback) throws(Errno) {
        let src = source.rawValue, dst = target.rawValue
        var way = Way.copyFileRange
        var inOff = start
        while inOff < end {
            let count = Int(min(end - inOff, Int64(writeback.callLimit)))
            let n: Int
            do {
                switch way {
                case .copyFileRange:
                    var outOff = inOff
                    n = try Sys.copyFileRange(src, &inOff, dst, &outOff, count)
                case .sendfile:
                    n = try Sys.sendfile(dst, src, &inOff, count)   // writes at the target's position
                case .readWrite:
                    return try copyByReading(from: source, to: target, start: inOff, end: end, writeback: &writeback)
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
            writeback.copied(upTo: inOff)   // both ways write at the source's offsets
        }
    }

    private static func copyByReading(from source: borrowing Descriptor, to target: borrowing Descriptor,
                                      start: Int64, end: Int64, writeback: inout EarlyWriteback) throws(Errno) {
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
            writeback.copied(upTo: off)
        }
    }

}
