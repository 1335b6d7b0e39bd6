import Crypto
import UnionFS

/// A sha256 content digest, `sha256:<64 lowercase hex digits>`. Parsing checks the form, so a
/// digest can name a file under `blobs/sha256/` without leading anywhere else.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let hex: String
    public var description: String { "sha256:" + hex }
    /// The short form `image ls` shows (12 hex digits, as docker and podman).
    public var short: String { String(hex.prefix(12)) }

    public init?(_ text: String) {
        guard text.hasPrefix("sha256:") else { return nil }
        let hex = text.dropFirst(7)
        guard Digest.isHex(hex) else { return nil }
        self.hex = String(hex)
    }

    init(hex: String) { self.hex = hex }

    init(_ digest: LayerDigest) { hex = digest.hex }

    /// The digest of `bytes`.
    static func of(_ bytes: [UInt8]) -> Digest {
        let d = SHA256.hash(data: bytes)
        return Digest(hex: hexString(d))
    }

    /// Parses a digest that a manifest or archive gives, naming where it came from on failure.
    static func parse(_ text: String, what: String) throws(UnionFSError) -> Digest {
        guard let d = Digest(text) else {
            throw UnionFSError.corrupt("\(what): unsupported or malformed digest '\(text)' (only sha256 is supported)")
        }
        return d
    }

    static func isHex<S: StringProtocol>(_ s: S) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The OCI chain ID of a layer: its diffID for the bottom layer, else
    /// sha256 of "<parent chain ID> <diffID>".
    static func chain(parent: Digest?, diffID: Digest) -> Digest {
        guard let parent else { return diffID }
        return of(Array("\(parent) \(diffID)".utf8))
    }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let d = Digest(text) else { throw UnionFSError.corrupt("malformed digest '\(text)'") }
        self = d
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

func hexString<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var s: [UInt8] = []
    for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xf)]) }
    return String(decoding: s, as: UTF8.self)
}

/// Image errors are configuration errors: one line for the command line, naming the thing.
public typealias ImageError = ConfigurationError
