import Glibc

/// A bounds-checked reader over one message as the kernel wrote it (little-endian, the host's
/// order on every Linux this builds for). Nothing is copied: names and data are handed out as
/// pointers into the buffer, valid while the buffer is (one request's life).
struct WireReader {
    let base: UnsafeRawPointer
    let count: Int
    private(set) var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!
        count = buffer.count
    }

    var remaining: Int { count - offset }

    @inline(__always)
    mutating func load<T: FixedWidthInteger>(_: T.Type = T.self) throws(ProtocolError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .short }
        defer { offset += size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func u32() throws(ProtocolError) -> UInt32 { try load() }
    mutating func u64() throws(ProtocolError) -> UInt64 { try load() }

    mutating func skip(_ n: Int) throws(ProtocolError) {
        guard n >= 0, remaining >= n else { throw .short }
        offset += n
    }

    /// A NUL-terminated name (the NUL within the message), as a pointer into the buffer.
    mutating func name() throws(ProtocolError) -> WireName {
        let start = base + offset
        guard let nul = memchr(start, 0, remaining) else { throw .unterminatedName }
        let length = UnsafeRawPointer(nul) - start
        guard length > 0 else { throw .emptyName }
        offset += length + 1
        return WireName(pointer: start.assumingMemoryBound(to: CChar.self), length: length)
    }

    /// The next `n` bytes, in place.
    mutating func bytes(_ n: Int) throws(ProtocolError) -> UnsafeRawBufferPointer {
        guard n >= 0, remaining >= n else { throw .short }
        defer { offset += n }
        return UnsafeRawBufferPointer(start: base + offset, count: n)
    }
}

/// A name inside a request buffer: NUL-terminated at `pointer[length]`, at least one byte.
struct WireName: Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    let pointer: UnsafePointer<CChar>
    let length: Int

    var string: String { String(cString: pointer) }
    var description: String { string.debugDescription }
    var debugDescription: String { description }

    static func == (a: WireName, b: WireName) -> Bool {
        a.length == b.length && memcmp(a.pointer, b.pointer, a.length) == 0
    }
}

/// Why a message could not be decoded. The loop answers such a request `EIO` (`EINVAL` for
/// a bad name) when its header could be read, and drops it otherwise; it never traps.
enum ProtocolError: Error, Equatable {
    /// Fewer bytes than the header or the opcode's fixed part.
    case short
    /// The header's length disagrees with what was read.
    case badLength
    /// A name without its NUL inside the message.
    case unterminatedName
    /// An empty name where one is required.
    case emptyName

    var errno: Int32 { self == .unterminatedName || self == .emptyName ? EINVAL : EIO }
}

/// A little-endian writer into a reply buffer whose size the caller computed.
struct WireWriter {
    let base: UnsafeMutableRawPointer
    private(set) var offset = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

    mutating func zero(_ n: Int) {
        (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: n)
        offset += n
    }

    mutating func put(bytes: UnsafeRawPointer, count: Int) {
        (base + offset).copyMemory(from: bytes, byteCount: count)
        offset += count
    }

    /// Zeroes up to the next multiple of 8 (dirent records).
    mutating func align8() { zero((8 - offset % 8) % 8) }
}
