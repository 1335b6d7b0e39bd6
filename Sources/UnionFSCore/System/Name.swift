import Glibc
import SystemPackage

/// One path component, owned, stored NUL-terminated so it can be handed to `*at` calls as is.
///
/// The stored form of a name (a node's name, a listing's entry). Names arrive borrowed and
/// checked (`FileName.validating`) and are copied into a `Name` only where they must be kept
/// (`Name(_: FileName)`). A `Name` is never empty, never contains `/`, and is at most
/// `NAME_MAX` bytes. Sendable by hand: its buffer is never written after it is made, and
/// `ManagedBuffer` cannot say so itself.
public struct Name: Hashable, @unchecked Sendable, CustomStringConvertible {
    /// The bytes with a trailing NUL, and their count, in one heap block.
    private let buffer: NameBytes

    /// Builds a name from raw bytes (a directory entry); the bytes must be a valid component.
    package init(bytes: UnsafeRawBufferPointer) {
        buffer = NameBytes.make(count: bytes.count) { dst in
            if let src = bytes.baseAddress { dst.copyMemory(from: src, byteCount: bytes.count) }
        }
    }

    /// Builds a name from a Swift string (set-up and in-process API paths, never hot ones).
    public init(_ string: String) throws(Errno) {
        let cs = string.utf8CString
        guard cs.count > 1 else { throw .noSuchFileOrDirectory }
        guard cs.count - 1 <= Int(NAME_MAX) else { throw .fileNameTooLong }
        guard !string.utf8.contains(UInt8(ascii: "/")) else { throw .invalidArgument }
        buffer = cs.withUnsafeBytes { src in
            NameBytes.make(count: cs.count - 1) { $0.copyMemory(from: src.baseAddress!, byteCount: cs.count - 1) }
        }
    }

    /// Number of bytes, without the NUL.
    public var count: Int { Int(buffer.header) }

    /// Calls `body` with the NUL-terminated bytes.
    public func withCString<R, E: Error>(_ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
        try buffer.withUnsafeMutablePointerToElements { (p) throws(E) -> R in try body(UnsafePointer(p)) }
    }

    /// The bytes without the NUL.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        buffer.withUnsafeMutablePointerToElements { body(UnsafeRawBufferPointer(start: $0, count: count)) }
    }

    public var isDotOrDotDot: Bool {
        withBytes { b in (b.count == 1 && b[0] == 0x2e) || (b.count == 2 && b[0] == 0x2e && b[1] == 0x2e) }
    }

    /// `true` when the name starts with `prefix` (ASCII).
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        guard count >= n else { return false }
        return withBytes { memcmp($0.baseAddress!, prefix.utf8Start, n) == 0 }
    }

    /// The name with its first `n` bytes removed, or nil when that leaves nothing.
    public func dropFirst(_ n: Int) -> Name? {
        guard count > n else { return nil }
        return withBytes { Name(bytes: UnsafeRawBufferPointer(rebasing: $0.dropFirst(n))) }
    }

    /// `prefix` + this name, or nil when that would exceed `NAME_MAX`.
    public func prefixed(_ prefix: StaticString) -> Name? {
        let n = prefix.utf8CodeUnitCount
        guard count + n <= Int(NAME_MAX) else { return nil }
        let own = count
        return withBytes { src in
            Name(buffer: NameBytes.make(count: own + n) { dst in
                dst.copyMemory(from: prefix.utf8Start, byteCount: n)
                (dst + n).copyMemory(from: src.baseAddress!, byteCount: own)
            })
        }
    }

    private init(buffer: NameBytes) { self.buffer = buffer }

    public static func == (a: Name, b: Name) -> Bool {
        a.buffer === b.buffer || a.withBytes { x in b.withBytes { y in x.count == y.count && memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 } }
    }

    public func hash(into hasher: inout Hasher) {
        withBytes { hasher.combine(bytes: $0) }
    }

    public var description: String {
        withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// The name as Swift bytes (for sorting and output).
    public var bytes: [UInt8] { withBytes { Array($0) } }
}

/// A name's bytes and NUL after a one-byte count (`NAME_MAX` is 255) in a single allocation:
/// 16 bytes less per name than an `Array`'s header, which matters for the node's name held for
/// every entry the kernel knows (`NodeFootprintTests`) and for every entry of a listing.
/// Never changed after `make`.
final class NameBytes: ManagedBuffer<UInt8, CChar> {
    /// A buffer of `count` bytes written by `fill`, then the NUL.
    static func make(count: Int, _ fill: (UnsafeMutableRawPointer) -> Void) -> NameBytes {
        precondition(count <= Int(UInt8.max), "a name is at most NAME_MAX bytes")
        let b = unsafeDowncast(create(minimumCapacity: count + 1) { _ in UInt8(count) }, to: NameBytes.self)
        b.withUnsafeMutablePointerToElements { p in
            fill(UnsafeMutableRawPointer(p))
            p[count] = 0
        }
        return b
    }
}
