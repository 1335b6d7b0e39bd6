import CArchive
import Glibc
import SystemPackage
import UnionFSCore

/// One tar entry as the commit describes it: everything but the data.
struct TarHeader {
    /// Relative path bytes, no leading "/" (directories end in "/").
    var path: [UInt8]
    var mode: mode_t
    var uid: uid_t = 0
    var gid: gid_t = 0
    var mtime: timespec = timespec(tv_sec: 0, tv_nsec: 0)
    var size: Int64 = 0
    var rdev: dev_t = 0
    var symlinkTarget: [UInt8]? = nil
    /// For a hard link: the path of the entry it links to.
    var linkTarget: [UInt8]? = nil
    var xattrs: [(String, [UInt8])] = []
}

/// Writes a pax tar (ustar where that suffices) through libarchive into a `ByteSink`.
///
/// Only what `TarHeader` says goes in: no user or group names, no atime or ctime, so the same
/// files give the same bytes on any machine and at any time.
final class TarWriter {
    private let output: ArchiveOutput
    private let entry: OpaquePointer

    init(sink: ByteSink) throws(Errno) {
        output = try ArchiveOutput(sink: sink) { a in
            archive_write_set_format_pax_restricted(a) == ARCHIVE_OK
                && archive_write_add_filter_none(a) == ARCHIVE_OK
                && archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK
        }
        guard let e = archive_entry_new() else { throw .noMemory }
        entry = e
    }

    deinit { archive_entry_free(entry) }

    /// Writes a header; for a regular file the caller then writes exactly `size` bytes.
    func add(_ h: TarHeader) throws(Errno) {
        archive_entry_clear(entry)
        withCString(h.path) { archive_entry_copy_pathname(entry, $0) }
        archive_entry_set_mode(entry, h.mode)
        archive_entry_set_uid(entry, Int64(h.uid))
        archive_entry_set_gid(entry, Int64(h.gid))
        archive_entry_set_mtime(entry, h.mtime.tv_sec, h.mtime.tv_nsec)
        if let target = h.linkTarget {
            withCString(target) { archive_entry_copy_hardlink(entry, $0) }
            archive_entry_set_size(entry, 0)
        } else {
            archive_entry_set_size(entry, h.mode & S_IFMT == Glibc.S_IFREG ? h.size : 0)
        }
        if let target = h.symlinkTarget { withCString(target) { archive_entry_copy_symlink(entry, $0) } }
        let type = h.mode & S_IFMT
        if type == Glibc.S_IFCHR || type == Glibc.S_IFBLK {
            archive_entry_set_rdev(entry, h.rdev)
        }
        for (name, value) in h.xattrs {
            value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, name, $0.baseAddress, $0.count) }
        }
        try output.check(archive_write_header(output.handle, entry))
    }

    /// Writes the data of the current entry, copied from `fd` (`size` bytes; a file that shrank
    /// meanwhile is padded with zeros by libarchive, one that grew is cut at `size`).
    func addData(from fd: Int32, size: Int64, progress: (Int) -> Void) throws(Errno) {
        let chunk = 1 << 17
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset: Int64 = 0
        while offset < size {
            let want = Int(min(Int64(chunk), size - offset))
            let n = try Sys.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), offset)
            if n == 0 { break }
            try output.writeData(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += Int64(n)
            progress(n)
        }
        try output.check(archive_write_finish_entry(output.handle))
    }

    /// Writes the two zero blocks that end a tar and flushes the sink chain.
    func close() throws(Errno) { try output.close() }

    private func withCString<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (bytes + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }
}
