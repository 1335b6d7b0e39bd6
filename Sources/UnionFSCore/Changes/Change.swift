/// What happened to one path between a lower tree and the merged tree, as `docker diff` says it.
public enum ChangeKind: String, Sendable, Equatable, Codable {
    case added = "A"
    case changed = "C"
    case deleted = "D"
}

/// One line of a diff: a kind and an absolute path in the merged tree (`/etc/passwd`).
///
/// The path is kept as bytes because file names need not be UTF-8; `path` decodes it for
/// display. Sorting is by these bytes, which puts every directory before its descendants.
public struct Change: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let kind: ChangeKind
    /// The absolute path, "/"-separated, without a trailing slash.
    public let pathBytes: [UInt8]

    public init(_ kind: ChangeKind, pathBytes: [UInt8]) {
        self.kind = kind
        self.pathBytes = pathBytes
    }

    public init(_ kind: ChangeKind, _ path: String) {
        self.init(kind, pathBytes: Array(path.utf8))
    }

    public var path: String { String(decoding: pathBytes, as: UTF8.self) }

    /// `A /path`, exactly as `docker diff` prints it.
    public var description: String { kind.rawValue + " " + path }
}

extension Change {
    /// Sorts changes by path bytes (the order `docker diff` uses), so output is deterministic.
    public static func sorted(_ changes: [Change]) -> [Change] {
        changes.sorted { $0.pathBytes.lexicographicallyPrecedes($1.pathBytes) }
    }

    /// The lines `docker diff` prints, one per change, each ending in a newline.
    public static func text(_ changes: [Change]) -> String {
        var out = ""
        for c in changes { out += c.description + "\n" }
        return out
    }

    /// A JSON array of `{"Kind":"A","Path":"/x"}` objects, in the given order. The field names
    /// are those of the Docker Engine API's container changes, so existing tooling reads it.
    public static func json(_ changes: [Change]) -> String {
        var out = "["
        for (i, c) in changes.enumerated() {
            if i > 0 { out += "," }
            out += "{\"Kind\":\"\(c.kind.rawValue)\",\"Path\":" + jsonString(c.path) + "}"
        }
        return out + "]\n"
    }

    /// A JSON string literal (RFC 8259 escaping; invalid UTF-8 was already replaced on decoding).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = Array("0123456789abcdef")
                out += "\\u00" + String(hex[Int(u.value >> 4)]) + String(hex[Int(u.value & 0xf)])
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
