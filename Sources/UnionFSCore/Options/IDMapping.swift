import Glibc

/// How owners on disk are shown through the mount, as fuse-overlayfs's `uidmapping`,
/// `gidmapping`, `squash_to_uid`, `squash_to_gid` and `squash_to_root` define it.
///
/// A range `disk:shown:count` shows disk IDs `disk..<disk+count` as `shown..<shown+count` and
/// stores what the mount's users create or chown to in the reverse direction. IDs outside every
/// range show as the overflow ID 65534 (and are stored as it). Squashing shows every file as
/// owned by one ID and does not change what is stored.
public struct IDMapping: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public let disk: UInt32
        public let shown: UInt32
        public let count: UInt32
    }

    public var uids: [Range] = []
    public var gids: [Range] = []
    public var squashUID: UInt32?
    public var squashGID: UInt32?

    public static let overflow: UInt32 = 65534

    public init() {}

    public var isIdentity: Bool { uids.isEmpty && gids.isEmpty && squashUID == nil && squashGID == nil }

    /// Owner of a file as the mount shows it.
    public func shown(_ st: inout stat) {
        if let u = squashUID { st.st_uid = u } else if !uids.isEmpty { st.st_uid = Self.map(st.st_uid, uids, toShown: true) }
        if let g = squashGID { st.st_gid = g } else if !gids.isEmpty { st.st_gid = Self.map(st.st_gid, gids, toShown: true) }
    }

    /// The uid stored on disk for an owner given through the mount.
    public func diskUID(_ id: uid_t) -> uid_t { uids.isEmpty ? id : Self.map(id, uids, toShown: false) }
    /// The gid stored on disk for a group given through the mount.
    public func diskGID(_ id: gid_t) -> gid_t { gids.isEmpty ? id : Self.map(id, gids, toShown: false) }

    private static func map(_ id: UInt32, _ ranges: [Range], toShown: Bool) -> UInt32 {
        for r in ranges {
            let from = toShown ? r.disk : r.shown
            let to = toShown ? r.shown : r.disk
            if id >= from && UInt64(id) < UInt64(from) + UInt64(r.count) { return to &+ (id - from) }
        }
        return overflow
    }

    /// Parses `A:B:N[:A:B:N...]` (fuse-overlayfs's form, colon-separated triples). containers/storage
    /// sends every triple with a colon in front (`uidmapping=:0:100000:65536`), which
    /// fuse-overlayfs's strtok-based parser skips: one leading colon is accepted too.
    static func parseRanges(_ value: String, option: String) throws(ConfigurationError) -> [Range] {
        let body = value.hasPrefix(":") ? value.dropFirst() : Substring(value)
        let parts = body.split(separator: ":", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count % 3 == 0 else {
            throw ConfigurationError("option '\(option)' needs ID:MAPPED-ID:COUNT triples, got '\(value)'")
        }
        var out: [Range] = []
        for i in stride(from: 0, to: parts.count, by: 3) {
            guard let a = UInt32(parts[i]), let b = UInt32(parts[i + 1]), let n = UInt32(parts[i + 2]), n > 0 else {
                throw ConfigurationError("option '\(option)' has a bad triple '\(parts[i]):\(parts[i + 1]):\(parts[i + 2])'")
            }
            out.append(Range(disk: a, shown: b, count: n))
        }
        return out
    }
}
