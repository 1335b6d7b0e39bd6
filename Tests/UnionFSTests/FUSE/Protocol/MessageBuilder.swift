import Glibc
@testable import UnionFSFuse

/// Builds request messages byte by byte, as the kernel lays them out, for the codec tests.
struct MessageBuilder {
    var bytes: [UInt8] = []

    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func name(_ s: String) { bytes += Array(s.utf8) + [0] }
    mutating func raw(_ b: [UInt8]) { bytes += b }

    /// A whole message: the 40-byte header (length filled in) then `payload`, then
    /// `extension` bytes the header counts in 8-byte words.
    static func message(_ opcode: Opcode, node: UInt64 = 1, unique: UInt64 = 7, uid: UInt32 = 1000,
                        gid: UInt32 = 100, pid: UInt32 = 4242, extensionWords: UInt16 = 0,
                        _ payload: (inout MessageBuilder) -> Void = { _ in }) -> [UInt8] {
        var p = MessageBuilder()
        payload(&p)
        var m = MessageBuilder()
        m.u32(UInt32(40 + p.bytes.count + Int(extensionWords) * 8)); m.u32(opcode.rawValue); m.u64(unique); m.u64(node)
        m.u32(uid); m.u32(gid); m.u32(pid); m.u16(extensionWords); m.u16(0)
        m.raw(p.bytes)
        m.raw([UInt8](repeating: 0xEE, count: Int(extensionWords) * 8))
        return m.bytes
    }
}

/// Decodes `bytes` with `decoder`: the header and the operation rendered while the buffer
/// lives (`Operation.describe`: names and data by their contents).
func decode(_ bytes: [UInt8], _ decoder: RequestDecoder = RequestDecoder()) throws(ProtocolError) -> (InHeader, String) {
    let result = bytes.withUnsafeBytes { b -> Result<(InHeader, String), ProtocolError> in
        do throws(ProtocolError) {
            let (h, op) = try decoder.decode(b)
            return .success((h, op.describe))
        } catch { return .failure(error) }
    }
    return try result.get()
}

/// Decodes `bytes` and runs `body` on the result while the buffer lives.
func withDecoded(_ bytes: [UInt8], _ decoder: RequestDecoder = RequestDecoder(),
                 _ body: (InHeader, Operation) throws -> Void) throws {
    try bytes.withUnsafeBytes { b in
        let (h, op) = try decoder.decode(b)
        try body(h, op)
    }
}
