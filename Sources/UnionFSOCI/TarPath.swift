import Glibc
import SystemPackage
import UnionFSCore

/// What a tar entry's name asks for, once checked.
enum TarPathMeaning: Equatable {
    /// A file, directory or link at these components (never empty).
    case entry([Name])
    /// `DIR/.wh.NAME`: hide NAME of the lower layers in DIR (DIR may be empty: the root).
    case whiteout(parent: [Name], name: Name)
    /// `DIR/.wh..wh..opq`: DIR hides everything of the lower layers.
    case opaque([Name])
    /// The layer root itself (`./`) or AUFS metadata (`.wh..wh.plnk` and the like): nothing to do.
    case ignored
}

/// Checks tar entry names: a layer may only name paths inside itself.
enum TarPath {
    /// Splits and checks a tar name. Rejects absolute names, `..` anywhere, components longer
    /// than `NAME_MAX` or paths longer than `PATH_MAX`, whiteouts of `""`, `.` or `..`, and
    /// `.wh.` names used as directories. Leading `./`, `.` components and repeated slashes go.
    static func parse(_ bytes: [UInt8]) throws(ConfigurationError) -> TarPathMeaning {
        let shown = String(decoding: bytes.prefix(200), as: UTF8.self) + (bytes.count > 200 ? "..." : "")
        guard !bytes.isEmpty else { throw UnionFSError.corrupt("tar entry with an empty name") }
        guard bytes[0] != 0x2f else { throw UnionFSError.corrupt("tar entry '\(shown)': absolute path") }
        guard bytes.count <= Int(PATH_MAX) else { throw UnionFSError.corrupt("tar entry '\(shown)': path longer than \(PATH_MAX) bytes") }
        var parts: [Name] = []
        for raw in bytes.split(separator: 0x2f, omittingEmptySubsequences: true) {
            if raw.elementsEqual([0x2e]) { continue }
            if raw.elementsEqual([0x2e, 0x2e]) { throw UnionFSError.corrupt("tar entry '\(shown)': '..' in path") }
            guard raw.count <= Int(NAME_MAX) else {
                throw UnionFSError.corrupt("tar entry '\(shown)': name longer than \(NAME_MAX) bytes")
            }
            guard !raw.contains(0) else { throw UnionFSError.corrupt("tar entry '\(shown)': NUL in name") }
            parts.append(raw.withUnsafeBytes { Name(bytes: $0) })
        }
        guard let last = parts.popLast() else { return .ignored }
        if let bad = parts.first(where: { $0.hasPrefix(".wh.") }) {
            throw UnionFSError.corrupt("tar entry '\(shown)': whiteout name '\(bad)' used as a directory")
        }
        guard last.hasPrefix(".wh.") else { return .entry(parts + [last]) }
        if last.description == ".wh..wh..opq" { return .opaque(parts) }
        if last.hasPrefix(".wh..wh.") && last.count > 8 { return .ignored }
        guard let hidden = last.dropFirst(4), !hidden.isDotOrDotDot else {
            throw UnionFSError.corrupt("tar entry '\(shown)': invalid whiteout name '\(last)'")
        }
        return .whiteout(parent: parts, name: hidden)
    }

    /// A display form of components, for messages.
    static func display(_ parts: [Name]) -> String {
        parts.map(\.description).joined(separator: "/")
    }
}
