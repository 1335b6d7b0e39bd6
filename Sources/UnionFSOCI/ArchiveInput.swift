import CArchive
import Glibc
import SystemPackage
import UnionFSCore

/// A libarchive read handle on a tar file, plain or compressed (gzip, zstd, xz, bzip2: the
/// filter is detected from the bytes, never from the file name).
final class ArchiveInput {
    let handle: OpaquePointer
    private(set) var entry: OpaquePointer? = nil
    /// The checked blob this tar is read from, when there is one.
    let stream: VerifyingStream?

    init(path: String) throws(ConfigurationError) {
        guard let a = archive_read_new() else { throw ConfigurationError("out of memory") }
        handle = a
        stream = nil
        archive_read_support_filter_all(a)
        archive_read_support_format_tar(a)
        if archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK {
            throw ConfigurationError("'\(path)': \(message)")
        }
    }

    /// Reads the tar out of a checked blob (already uncompressed by the stream).
    init(stream: VerifyingStream) throws(ConfigurationError) {
        guard let a = archive_read_new() else { throw ConfigurationError("out of memory") }
        handle = a
        self.stream = stream
        archive_read_support_format_tar(a)
        let ctx = Unmanaged.passUnretained(stream).toOpaque()
        if archive_read_open(a, ctx, nil, verifyingTarRead, nil) != ARCHIVE_OK {
            throw stream.failure ?? ConfigurationError("'\(stream.path)': \(message)")
        }
    }

    deinit { archive_read_free(handle) }

    /// Moves to the next header; false at the end. A damaged or non-tar input is an error.
    func next() throws(ConfigurationError) -> Bool {
        var e: OpaquePointer? = nil
        let r = archive_read_next_header(handle, &e)
        if r == ARCHIVE_EOF { return false }
        guard r >= ARCHIVE_WARN, let e else { throw ConfigurationError("reading the tar: \(message)") }
        entry = e
        return true
    }

    /// Calls `body` with each data block of the current entry and its offset in the file.
    func forEachBlock(_ body: (UnsafeRawBufferPointer, Int64) throws(Errno) -> Void) throws(ConfigurationError) {
        while true {
            var buffer: UnsafeRawPointer? = nil
            var size = 0
            var offset: Int64 = 0
            let r = archive_read_data_block(handle, &buffer, &size, &offset)
            if r == ARCHIVE_EOF { return }
            guard r >= ARCHIVE_WARN else { throw ConfigurationError("reading the tar: \(message)") }
            do { try body(UnsafeRawBufferPointer(start: buffer, count: size), offset) } catch {
                throw UnionFSError("writing '\(String(decoding: path, as: UTF8.self))'", wrapping: error)
            }
        }
    }

    var path: [UInt8] { bytes(archive_entry_pathname(entry)) ?? [] }
    var hardlink: [UInt8]? { bytes(archive_entry_hardlink(entry)) }
    var symlink: [UInt8]? { bytes(archive_entry_symlink(entry)) }
    var mode: mode_t { archive_entry_mode(entry) }
    var uid: uid_t { uid_t(truncatingIfNeeded: archive_entry_uid(entry)) }
    var gid: gid_t { gid_t(truncatingIfNeeded: archive_entry_gid(entry)) }
    var size: Int64 { archive_entry_size(entry) }
    var rdev: dev_t { archive_entry_rdev(entry) }
    var mtime: timespec {
        timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
    }

    /// The entry's xattrs, in tar order.
    var xattrs: [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        archive_entry_xattr_reset(entry)
        var name: UnsafePointer<CChar>? = nil
        var value: UnsafeRawPointer? = nil
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK, let name {
            out.append((String(cString: name), Array(UnsafeRawBufferPointer(start: value, count: size))))
        }
        return out
    }

    private var message: String {
        if let failure = stream?.failure { return failure.message }
        return archive_error_string(handle).map { String(cString: $0) } ?? "unreadable archive"
    }

    private func bytes(_ p: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let p else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: strlen(p)))
    }
}
