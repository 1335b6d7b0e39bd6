import Glibc
import SystemPackage

/// Which xattrs belong to the overlay and how the others are stored: the one rule that
/// getxattr, listxattr, setxattr, removexattr and copy-up all follow (docs/SEMANTICS.md §1).
///
/// Kernel overlayfs (6.7 and later, checked on this machine) is the model:
/// - `<ns>.overlay.*` of the stack's own namespace is the overlay's: never shown, never copied up.
/// - Except the escaped form: `<ns>.overlay.X` set through the mount is stored as
///   `<ns>.overlay.overlay.X`, and a stored `<ns>.overlay.overlay.X` (in any layer) is shown as
///   `<ns>.overlay.X` and copied up as it is stored. So an overlay's layers can be built and
///   kept inside an overlay.
/// - The other namespace's `overlay.*` are ordinary xattrs (the kernel shows a lower file's
///   `user.overlay.x` on a `trusted` mount, and copies it up)...
/// - ...but for `overlay.opaque` and `overlay.whiteout`: UnionFS honours those in lowers of
///   either namespace (**beyond the kernel**), so they are private in both, and setting them
///   through the mount is refused (`EPERM`): an upper must not carry a marker it would obey
///   once it is a lower.
struct OverlayXattrs: Sendable {
    /// `<ns>.overlay.`
    private let own: [UInt8]
    /// `<ns>.overlay.overlay.`: the escaped form.
    private let ownEscaped: [UInt8]
    /// `<other ns>.overlay.`
    private let other: [UInt8]
    private static let escape = Array("overlay.".utf8)

    init(_ ns: XattrNamespace) {
        own = Array(ns.overlayPrefix.utf8)
        ownEscaped = own + Self.escape
        other = Array((ns == .trusted ? XattrNamespace.user : .trusted).overlayPrefix.utf8)
    }

    /// What a stored xattr is to the mount.
    enum Kind: Equatable {
        /// The overlay's own: hidden, not copied up.
        case `private`
        /// `<ns>.overlay.overlay.X`, shown as `<ns>.overlay.X`.
        case escaped
        /// Anything else: shown and copied as it is.
        case ordinary
    }

    /// The kind of the xattr stored under `name` (bytes, no NUL).
    @inline(__always)
    func kind(stored name: UnsafeRawBufferPointer) -> Kind {
        if Self.starts(name, own) {
            return Self.starts(name, ownEscaped) ? .escaped : .private
        }
        if Self.starts(name, other) && isMarker(name, after: other.count) { return .private }
        return .ordinary
    }

    /// True when the stored xattr `name` (NUL-terminated) stays behind at copy-up.
    func isPrivate(stored name: UnsafePointer<CChar>) -> Bool {
        kind(stored: UnsafeRawBufferPointer(start: name, count: strlen(name))) == .private
    }

    /// The name a stored xattr is shown under through the mount, nil when it is private.
    func shown(stored name: UnsafeRawBufferPointer) -> [UInt8]? {
        switch kind(stored: name) {
        case .private: return nil
        case .ordinary: return Array(name)
        case .escaped: return own + Array(name.dropFirst(ownEscaped.count))
        }
    }

    /// Calls `body` with the stored name of the xattr the mount calls `name`: escaped in the
    /// own namespace, as it is otherwise (no copy then). `EPERM` for the other namespace's
    /// markers (`forWriting`) or `ENODATA` (reading, removing): they are never the caller's.
    @inline(__always)
    func withStoredName<R>(_ name: UnsafePointer<CChar>, forWriting: Bool,
                           _ body: (UnsafePointer<CChar>) throws(Errno) -> R) throws(Errno) -> R {
        let n = strlen(name)
        let raw = UnsafeRawBufferPointer(start: name, count: n)
        if Self.starts(raw, other) && isMarker(raw, after: other.count) {
            throw forWriting ? .notPermitted : .noData
        }
        guard Self.starts(raw, own) else { return try body(name) }
        let total = n + Self.escape.count
        guard total <= Int(XATTR_NAME_MAX) else { throw .outOfRange }
        return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: total + 1) { (buf) throws(Errno) -> R in
            let p = UnsafeMutableRawPointer(buf.baseAddress!)
            ownEscaped.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            (p + ownEscaped.count).copyMemory(from: name + own.count, byteCount: n - own.count + 1)
            return try body(buf.baseAddress!)
        }
    }

    /// `opaque` or `whiteout` right after `prefix` bytes, to the end of the name.
    private func isMarker(_ name: UnsafeRawBufferPointer, after prefix: Int) -> Bool {
        let rest = UnsafeRawBufferPointer(rebasing: name[prefix...])
        return rest.elementsEqual("opaque".utf8) || rest.elementsEqual("whiteout".utf8)
    }

    @inline(__always)
    private static func starts(_ name: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        name.count >= prefix.count && prefix.withUnsafeBytes { memcmp($0.baseAddress!, name.baseAddress!, prefix.count) == 0 }
    }
}

/// `XATTR_NAME_MAX` of linux/limits.h (not exported by the Glibc module).
private let XATTR_NAME_MAX: Int32 = 255
