/// The names of a `listxattr` result as the kernel writes them, each followed by a NUL: walked
/// in place, each name given as its bytes without the NUL (the byte after it is that NUL, so
/// its base address is also a C string).
struct XattrNameList: Sequence {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var start = 0

        mutating func next() -> UnsafeRawBufferPointer? {
            guard start < bytes.count else { return nil }
            var end = start
            while end < bytes.count && bytes[end] != 0 { end += 1 }
            defer { start = end + 1 }
            return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        }
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    /// True when one of the names equals `a` or `b` (C strings, their NUL included).
    func contains(_ a: [CChar], _ b: [CChar]) -> Bool {
        contains { Self.equal($0, a) || Self.equal($0, b) }
    }

    private static func equal(_ name: UnsafeRawBufferPointer, _ c: [CChar]) -> Bool {
        name.count == c.count - 1 && c.withUnsafeBytes { name.elementsEqual($0.prefix(name.count)) }
    }
}
