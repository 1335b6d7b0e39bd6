import Crypto
import Glibc
import SystemPackage
import UnionFSCore

/// Where the bytes of a layer go: a chain of sinks, so one pass over the upper yields the tar's
/// digest (the diffID), the compressed stream and its digest.
protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(Errno)
    /// Flushes whatever is buffered; called once, after the last write.
    func finish() throws(Errno)
}

/// A sha256 digest in OCI form, `sha256:<64 hex digits>`.
public struct LayerDigest: Sendable, Equatable, CustomStringConvertible {
    public let hex: String
    public var description: String { "sha256:" + hex }

    init(_ digest: SHA256.Digest) {
        let digits = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        for b in digest { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xf)]) }
        hex = String(decoding: s, as: UTF8.self)
    }
}

/// Hashes what passes through and counts it, then hands it on (or drops it when `next` is nil).
final class HashingSink: ByteSink {
    private var hasher = SHA256()
    private(set) var count: Int64 = 0
    let next: ByteSink?

    init(next: ByteSink?) { self.next = next }

    func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        hasher.update(bufferPointer: bytes)
        count += Int64(bytes.count)
        try next?.write(bytes)
    }

    func finish() throws(Errno) { try next?.finish() }

    var digest: LayerDigest { LayerDigest(hasher.finalize()) }
}

/// Writes everything to a descriptor (a file or a pipe), retrying short writes.
final class DescriptorSink: ByteSink {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var done = 0
        while done < bytes.count {
            done += try Sys.write(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]))
        }
    }

    func finish() throws(Errno) {}
}
