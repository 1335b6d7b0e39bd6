import Glibc
import SystemPackage

/// One path component, owned, stored NUL-terminated so it can be handed to `*at` calls as is.
///
/// The stored form of a name (a node's name, a listing's entry). Names arrive borrowed and
/// checked (`FileName.validating`) and are copied into a `Name` only where they must be kept
/// (`Name(_: FileName)`). A `Name` is never empty, never contains `/`, and is at most
/// `NAME_MAX` bytes.
public struct Name: Hashable, Sendable, CustomStringConvertible {
    /// The bytes with a trailing NUL.
    package let storage: [CChar]

    /// Builds a name from raw bytes (a directory entry); the bytes must be a valid component.
    package init(bytes: UnsafeRawBufferPointer) {
        var s = [CChar](repeating: 0, count: bytes.count + 1)
        s.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
        storage = s
    }

    /// Builds a name from a Swift string (set-up and in-process API paths, never hot ones).
    public init(_ string: String) throws(Errno) {
        let cs = string.utf8CString
        guard cs.count > 1 else { throw .noSuchFileOrDirectory }
        guard cs.count - 1 <= Int(NAME_MAX) else { throw .fileNameTooLong }
        guard !string.utf8.contains(UInt8(ascii: "/")) else { throw .invalidArgument }
        storage = Array(cs)
    }

    /// Number of bytes, without the NUL.
    public var count: Int { storage.count - 1 }

    /// Calls `body` with the NUL-terminated bytes.
    
    public func withCString<R, E: Error>(_ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBufferPointer { (p) throws(E) -> R in try body(p.baseAddress!) }
    }

    /// The bytes without the NUL.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
    }

    public var isDotOrDotDot: Bool {
        (count == 1 && storage[0] == 0x2e) || (count == 2 && storage[0] == 0x2e && storage[1] == 0x2e)
    }

    /// `true` when the name starts with `prefix` (ASCII).
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        guard count >= n else { return false }
        return storage.withUnsafeBytes { memcmp($0.baseAddress!, prefix.utf8Start, n) == 0 }
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
        var s = [CChar](repeating: 0, count: count + n + 1)
        s.withUnsafeMutableBytes { dst in
            dst.baseAddress!.copyMemory(from: prefix.utf8Start, byteCount: n)
            storage.withUnsafeBytes { src in
                (dst.baseAddress! + n).copyMemory(from: src.baseAddress!, byteCount: count)
            }
        }
        return Name(storage: s)
    }

    init(storage: [CChar]) { self.storage = storage }

    public var description: String {
        withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// The name as Swift bytes (for sorting and output).
    public var bytes: [UInt8] { withBytes { Array($0) } }
}
