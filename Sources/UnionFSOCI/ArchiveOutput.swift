import CArchive
import Glibc
import SystemPackage
import UnionFSCore

/// A libarchive write handle whose output goes to a `ByteSink` instead of a file, so that the
/// tar can be hashed and compressed on its way out.
final class ArchiveOutput {
    let handle: OpaquePointer
    let sink: ByteSink
    /// The sink's error, kept so the caller gets it rather than libarchive's generic failure.
    fileprivate var failure: Errno?
    private var closed = false

    /// `configure` sets format and filters on the fresh handle; a non-`ARCHIVE_OK` result fails.
    init(sink: ByteSink, configure: (OpaquePointer) -> Bool) throws(Errno) {
        guard let a = archive_write_new() else { throw .noMemory }
        handle = a
        self.sink = sink
        guard configure(a) else {
            archive_write_free(a)
            throw .invalidArgument
        }
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        guard archive_write_open(a, ctx, nil, archiveOutputWrite, nil) == ARCHIVE_OK else {
            archive_write_free(a)
            throw .ioError
        }
    }

    deinit {
        if !closed { archive_write_close(handle) }
        archive_write_free(handle)
    }

    /// Turns a libarchive status into success or the best `Errno` for it.
    func check(_ status: Int32) throws(Errno) {
        if status >= ARCHIVE_WARN { return }
        throw error
    }

    /// The error behind the last failure: the sink's own, else libarchive's errno, else EIO.
    var error: Errno {
        if let failure { return failure }
        let e = archive_errno(handle)
        return e > 0 ? Errno(rawValue: e) : .ioError
    }

    /// libarchive's message for the last failure, for the command line.
    var message: String {
        archive_error_string(handle).map { String(cString: $0) } ?? "\(error)"
    }

    /// Writes `bytes` of the current entry's data.
    func writeData(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            let n = archive_write_data(handle, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { throw error }
            if n == 0 { return }  // past the size in the header: libarchive drops the rest
            done += n
        }
    }

    /// Writes the trailer and flushes every filter into the sink, then the sink itself.
    func close() throws(Errno) {
        closed = true
        try check(archive_write_close(handle))
        try sink.finish()
    }
}

/// The libarchive write callback: hands each block to the owning `ArchiveOutput`'s sink.
private func archiveOutputWrite(_ a: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?,
                                _ buffer: UnsafeRawPointer?, _ length: Int) -> Int {
    let output = Unmanaged<ArchiveOutput>.fromOpaque(ctx!).takeUnretainedValue()
    do {
        try output.sink.write(UnsafeRawBufferPointer(start: buffer, count: length))
        return length
    } catch {
        output.failure = error
        return -1
    }
}

/// Compresses a byte stream with a libarchive filter (the "raw" format: one nameless entry
/// whose data is the whole stream), for gzip or zstd around a tar written elsewhere.
final class CompressingSink: ByteSink {
    private let output: ArchiveOutput

    init(_ compression: LayerCompression, next: ByteSink) throws(Errno) {
        output = try ArchiveOutput(sink: next) { a in
            // No padding to 10240-byte blocks: the output is the compressed stream, exactly.
            guard archive_write_set_format_raw(a) == ARCHIVE_OK,
                  archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK else { return false }
            switch compression {
            case .none: return archive_write_add_filter_none(a) == ARCHIVE_OK
            case .gzip:
                // No timestamp in the gzip header: the same tar must give the same bytes.
                return archive_write_add_filter_gzip(a) == ARCHIVE_OK
                    && archive_write_set_filter_option(a, "gzip", "timestamp", nil) >= ARCHIVE_WARN
            case .zstd: return archive_write_add_filter_zstd(a) == ARCHIVE_OK
            }
        }
        guard let entry = archive_entry_new() else { throw .noMemory }
        defer { archive_entry_free(entry) }
        archive_entry_set_filetype(entry, UInt32(Glibc.S_IFREG))
        archive_entry_set_pathname(entry, "layer.tar")
        try output.check(archive_write_header(output.handle, entry))
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) { try output.writeData(bytes) }

    func finish() throws(Errno) { try output.close() }
}

/// How a committed layer is compressed.
public enum LayerCompression: String, Sendable, CaseIterable {
    case none
    case gzip
    case zstd
}
