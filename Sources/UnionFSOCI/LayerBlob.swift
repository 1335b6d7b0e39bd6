import CArchive
import Crypto
import Glibc
import SystemPackage
import UnionFSCore

/// What a layer blob's bytes must be, checked while the blob is read (image manifests and
/// configs say this: the blob digest and size, and the diffID of the uncompressed tar).
public struct LayerExpectation: Sendable, Equatable {
    /// `sha256:<hex>` of the blob as stored (compressed or not).
    public var digest: String?
    /// The blob's size in bytes: reading past it stops with an error.
    public var size: Int64?
    /// `sha256:<hex>` of the uncompressed tar.
    public var diffID: String?

    public init(digest: String? = nil, size: Int64? = nil, diffID: String? = nil) {
        self.digest = digest
        self.size = size
        self.diffID = diffID
    }
}

/// What reading a whole layer blob measured.
public struct LayerBlobDigests: Sendable, Equatable {
    public let digest: LayerDigest
    public let size: Int64
    public let diffID: LayerDigest
    public let tarSize: Int64
}

/// Reads layer blobs through `VerifyingStream`, without unpacking them.
public enum LayerBlob {
    /// Reads the whole blob at `path`, checks it against `expect`, and returns its digests; the
    /// uncompressed tar goes to `uncompressedTo` when given (for archives that want plain tars).
    public static func check(path: String, expect: LayerExpectation = LayerExpectation(),
                             uncompressedTo fd: Int32? = nil) throws(ConfigurationError) -> LayerBlobDigests {
        let stream = try VerifyingStream(path: path, expect: expect)
        let sink = fd.map { DescriptorSink(fd: $0) }
        while let chunk = try stream.readTar() {
            do { try sink?.write(chunk) } catch { throw UnionFSError("writing the uncompressed layer", wrapping: error) }
        }
        return try stream.finish()
    }
}

/// A layer blob read through two libarchive handles so that each byte is hashed once as it
/// passes: the first ("raw" format, any filter) turns the file into the uncompressed stream and
/// the file's bytes go through the blob hasher; the tar reader then reads that stream through
/// the diffID hasher. `finish` reads whatever the tar reader left (the end padding, trailing
/// bytes) and compares digests and sizes before the caller keeps anything.
final class VerifyingStream {
    let path: String
    let expect: LayerExpectation
    private let fd: Int32
    private let raw: OpaquePointer
    private var blobHasher = SHA256()
    private var tarHasher = SHA256()
    private(set) var blobCount: Int64 = 0
    private(set) var tarCount: Int64 = 0
    private let fileBuffer: UnsafeMutableRawBufferPointer
    private let tarBuffer: UnsafeMutableRawBufferPointer
    private var rawEnded = false
    /// Set by a callback that failed, so the caller sees this rather than libarchive's wording.
    var failure: ConfigurationError?

    init(path: String, expect: LayerExpectation) throws(ConfigurationError) {
        self.path = path
        self.expect = expect
        if let size = expect.size, size < 0 { throw ConfigurationError("layer '\(path)': negative size \(size)") }
        for d in [expect.digest, expect.diffID] {
            if let d, !d.hasPrefix("sha256:") { throw ConfigurationError("layer '\(path)': unsupported digest '\(d)'") }
        }
        // Non-blocking open, then blocking reads: the blob may be a FIFO fed by a download
        // (image pull), whose writer may already have finished and closed; a blocking open of
        // a FIFO without a writer would wait forever.
        do { fd = try Sys.open(path, O_RDONLY | O_NONBLOCK) } catch {
            throw UnionFSError.io(error, "layer '\(path)': \(error)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard let a = archive_read_new() else { Sys.close(fd); throw UnionFSError.io(.noMemory, "out of memory") }
        raw = a
        fileBuffer = .allocate(byteCount: 1 << 17, alignment: 16)
        tarBuffer = .allocate(byteCount: 1 << 17, alignment: 16)
        archive_read_support_filter_all(a)
        archive_read_support_format_raw(a)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        guard archive_read_open(a, ctx, nil, verifyingFileRead, nil) == ARCHIVE_OK else {
            throw failure ?? ConfigurationError("layer '\(path)': \(message(a))")
        }
        var entry: OpaquePointer? = nil
        let r = archive_read_next_header(a, &entry)
        if r == ARCHIVE_EOF { rawEnded = true } else if r < ARCHIVE_WARN {
            throw failure ?? ConfigurationError("layer '\(path)': \(message(a))")
        }
    }

    deinit {
        archive_read_free(raw)
        Sys.close(fd)
        fileBuffer.deallocate()
        tarBuffer.deallocate()
    }

    /// The next chunk of the file's bytes (hashed and counted), or an empty buffer at its end.
    fileprivate func readFile() -> UnsafeRawBufferPointer? {
        var want = fileBuffer.count
        if let size = expect.size {
            // Read one byte past the declared size at most, to notice a longer blob.
            want = Int(min(Int64(want), max(0, size - blobCount) + 1))
        }
        let n: Int
        do { n = try Sys.read(fd, UnsafeMutableRawBufferPointer(rebasing: fileBuffer[0..<want])) } catch {
            failure = UnionFSError.io(error, "layer '\(path)': \(error)")
            return nil
        }
        let chunk = UnsafeRawBufferPointer(rebasing: fileBuffer[0..<n])
        blobHasher.update(bufferPointer: chunk)
        blobCount += Int64(n)
        if let size = expect.size, blobCount > size {
            failure = UnionFSError.corrupt("layer '\(path)' is larger than the \(size) bytes its manifest says")
            return nil
        }
        return chunk
    }

    /// The next chunk of the uncompressed tar (hashed and counted), nil at its end.
    func readTar() throws(ConfigurationError) -> UnsafeRawBufferPointer? {
        if rawEnded { return nil }
        let n = archive_read_data(raw, tarBuffer.baseAddress, tarBuffer.count)
        if n < 0 { throw failure ?? ConfigurationError("layer '\(path)': \(message(raw))") }
        if n == 0 { rawEnded = true; return nil }
        let chunk = UnsafeRawBufferPointer(rebasing: tarBuffer[0..<n])
        tarHasher.update(bufferPointer: chunk)
        tarCount += Int64(n)
        return chunk
    }

    /// Reads the rest of both streams, then checks sizes and digests.
    func finish() throws(ConfigurationError) -> LayerBlobDigests {
        while try readTar() != nil {}
        while true {
            guard let chunk = readFile() else { throw failure! }
            if chunk.isEmpty { break }
        }
        let digest = LayerDigest(blobHasher.finalize())
        let diffID = LayerDigest(tarHasher.finalize())
        if let size = expect.size, blobCount != size {
            throw UnionFSError.corrupt("layer '\(path)' is truncated: \(blobCount) of \(size) bytes")
        }
        if let want = expect.digest, want != digest.description {
            throw UnionFSError.corrupt("layer '\(path)': digest mismatch: expected \(want), read \(digest)")
        }
        if let want = expect.diffID, want != diffID.description {
            throw UnionFSError.corrupt("layer '\(path)': diffID mismatch: expected \(want), read \(diffID)")
        }
        return LayerBlobDigests(digest: digest, size: blobCount, diffID: diffID, tarSize: tarCount)
    }

    private func message(_ a: OpaquePointer) -> String {
        archive_error_string(a).map { String(cString: $0) } ?? "unreadable data"
    }
}

/// libarchive's read callback for the file under a `VerifyingStream`.
private func verifyingFileRead(_ a: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?,
                               _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
    let stream = Unmanaged<VerifyingStream>.fromOpaque(ctx!).takeUnretainedValue()
    guard let chunk = stream.readFile() else { return -1 }
    buffer?.pointee = chunk.baseAddress
    return chunk.count
}

/// libarchive's read callback for a tar read out of a `VerifyingStream`.
func verifyingTarRead(_ a: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?,
                      _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
    let stream = Unmanaged<VerifyingStream>.fromOpaque(ctx!).takeUnretainedValue()
    do {
        guard let chunk = try stream.readTar() else { return 0 }
        buffer?.pointee = chunk.baseAddress
        return chunk.count
    } catch {
        stream.failure = error
        return -1
    }
}
