import Glibc
import SystemPackage

/// One path component, validated once and borrowed: the name every layer, merge and operation
/// API takes.
///
/// It points at bytes someone else owns (the request buffer FUSE handed the bridge, an owned
/// `Name`, a `getdents64` buffer, a static string), so making one allocates nothing: hot paths
/// validate a name once at the edge and hand the same borrowed value down. The bytes are always
/// NUL-terminated, so `cString` goes to `*at` calls as is.
///
/// It is `~Copyable` and handed out only as `borrowing` inside closures (`validating`,
/// `Name.withFileName`): a borrowed noncopyable value cannot be stored or returned, so it cannot
/// outlive the memory it points at. (A `~Escapable` type would say the same without the closure,
/// but declaring one needs the experimental `Lifetimes` feature in this toolchain, Swift 6.3.)
///
/// Invariants: 1 to `NAME_MAX` bytes, no `/`, no NUL, neither `.` nor `..`.
public struct FileName: ~Copyable {
    /// The NUL-terminated bytes.
    public let cString: UnsafePointer<CChar>
    /// Number of bytes, without the NUL.
    public let count: Int

    /// A name whose bytes the caller has already checked and keeps alive while it is used.
    @inline(__always)
    package init(unchecked cString: UnsafePointer<CChar>, count: Int) {
        self.cString = cString
        self.count = count
    }

    /// A name from a static string (immortal storage), for the fixed names the code uses itself
    /// (`work`, `.wh..wh..opq`). A string that is not a valid name is a bug: it traps.
    package init(_ literal: StaticString) {
        let p = UnsafeRawPointer(literal.utf8Start).assumingMemoryBound(to: CChar.self)
        precondition(Self.check(p, literal.utf8CodeUnitCount) == nil, "not a file name: \(literal)")
        self.init(unchecked: p, count: literal.utf8CodeUnitCount)
    }

    /// Checks the C string `cString` (as FUSE hands names over) once and calls `body` with it.
    /// Empty: `ENOENT`; longer than `NAME_MAX`: `ENAMETOOLONG`; a `/`, `.` or `..`: `EINVAL`.
    @inline(__always)
    public static func validating<R: ~Copyable>(_ cString: UnsafePointer<CChar>,
                                     _ body: (borrowing FileName) throws(Errno) -> R) throws(Errno) -> R {
        let n = strnlen(cString, Int(NAME_MAX) + 1)
        if let error = check(cString, n) { throw error }
        return try body(FileName(unchecked: cString, count: n))
    }

    /// `validating` for a Swift string (set-up and in-process API paths, never hot ones).
    public static func validating<R>(_ string: String,
                                     _ body: (borrowing FileName) throws(Errno) -> R) throws(Errno) -> R {
        guard !string.utf8.contains(0) else { throw .invalidArgument }
        return try Errno.lift {
            try string.withCString { c in try validating(c) { (n) throws(Errno) in try body(n) } }
        }
    }

    /// Why `n` bytes at `p` are not a valid name, or nil when they are.
    @inline(__always)
    static func check(_ p: UnsafePointer<CChar>, _ n: Int) -> Errno? {
        if n == 0 { return .noSuchFileOrDirectory }
        if n > Int(NAME_MAX) { return .fileNameTooLong }
        if p[0] == 0x2e && (n == 1 || (n == 2 && p[1] == 0x2e)) { return .invalidArgument }
        if memchr(p, Int32(UInt8(ascii: "/")), n) != nil { return .invalidArgument }
        return nil
    }

    /// The bytes without the NUL.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: cString, count: count) }

    /// `true` when the name starts with `prefix` (ASCII).
    @inline(__always)
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        return count >= n && memcmp(cString, prefix.utf8Start, n) == 0
    }

    /// True when the owned `name` has the same bytes (no allocation).
    @inline(__always)
    public func equals(_ name: Name) -> Bool {
        name.count == count && name.withBytes { memcmp($0.baseAddress!, cString, count) == 0 }
    }

    /// Calls `body` with `prefix` + this name (a stack buffer: no allocation), or returns nil
    /// when that would exceed `NAME_MAX`.
    @inline(__always)
    func withPrefix<R>(_ prefix: StaticString, _ body: (borrowing FileName) throws(Errno) -> R) throws(Errno) -> R? {
        let p = prefix.utf8CodeUnitCount
        guard count + p <= Int(NAME_MAX) else { return nil }
        return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + p + 1) { (buf) throws(Errno) -> R in
            let dst = buf.baseAddress!
            UnsafeMutableRawPointer(dst).copyMemory(from: prefix.utf8Start, byteCount: p)
            (dst + p).update(from: cString, count: count + 1)
            return try body(FileName(unchecked: dst, count: count + p))
        }
    }

    /// The name as a Swift string (messages and tests).
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

extension Name {
    /// Copies a borrowed name to store it (a node's name, a remembered link).
    public init(_ name: borrowing FileName) {
        self.init(bytes: name.bytes)
    }

    /// Calls `body` with this name, borrowed. A stored `Name` is valid by construction (it was
    /// validated or read from a directory), so nothing is checked again.
    @inline(__always)
    public func withFileName<R: ~Copyable, E: Error>(_ body: (borrowing FileName) throws(E) -> R) throws(E) -> R {
        // The pointer accessors give back only copyable results: carry the result out.
        var result: R? = nil
        try withCString { (p) throws(E) in
            result = try body(FileName(unchecked: p, count: count))
        }
        switch consume result {
        case .some(let r): return r
        case .none: fatalError("unreachable: body returned")
        }
    }
}

extension RawDirectoryEntry {
    /// The entry's name, borrowed from the `getdents64` buffer (valid inside the callback only,
    /// as the entry is; `.` and `..` never reach a callback).
    @inline(__always)
    package var fileName: FileName { FileName(unchecked: cName, count: name.count) }
}
