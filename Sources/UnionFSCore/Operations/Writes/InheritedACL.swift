import Glibc

/// What a new entry inherits from its directory's default POSIX ACL, computed by the daemon for
/// entries built in the workdir and renamed into place (over a whiteout, or an opaque new
/// directory), which the upper filesystem cannot make inherit from a directory they were not
/// made in. Entries made in the upper directory itself inherit there, as with kernel overlayfs.
///
/// The rule is POSIX's (the kernel's `posix_acl_create`): the new entry's access ACL is the
/// default ACL with the owner, group class (the mask, or the owning group without one) and
/// other entries limited by the requested mode, and its mode follows from them; the umask does
/// not apply. A new directory also takes the default ACL as its own default.
///
/// ACLs travel as the kernel's xattr form: a little-endian version 2 header, then 8-byte
/// entries (tag u16, perm u16, id u32).
package struct InheritedACL: Equatable {
    /// The new entry's permission bits (the rest of its mode is kept by the caller).
    package var mode: mode_t
    /// The access ACL to set, or nil when the inherited ACL says no more than the mode bits.
    package var access: [UInt8]?

    package static let userObj: UInt16 = 0x01, user: UInt16 = 0x02, groupObj: UInt16 = 0x04
    package static let group: UInt16 = 0x08, mask: UInt16 = 0x10, other: UInt16 = 0x20

    /// The inheritance of `defaultACL` (an xattr value) by an entry requested with `mode`;
    /// nil when the value is not a well-formed ACL (the caller then keeps the mode as it is).
    package static func inherit(_ defaultACL: [UInt8], mode requested: mode_t) -> InheritedACL? {
        guard defaultACL.count >= 4, (defaultACL.count - 4) % 8 == 0,
              u32(defaultACL, 0) == 2 else { return nil }
        var acl = defaultACL
        var mode = requested & 0o777
        var groupObjAt: Int?, maskAt: Int?
        var extended = false
        var at = 4
        while at < acl.count {
            let perm = mode_t(u16(acl, at + 2))
            switch u16(acl, at) {
            case userObj:
                let p = perm & ((mode >> 6) & 7)
                setU16(&acl, at + 2, UInt16(p))
                mode = (mode & ~0o700) | (mode & (p << 6))
            case user, group:
                extended = true
            case groupObj:
                groupObjAt = at
            case other:
                let p = perm & (mode & 7)
                setU16(&acl, at + 2, UInt16(p))
                mode = (mode & ~0o007) | (mode & p)
            case mask:
                maskAt = at
                extended = true
            default:
                return nil
            }
            at += 8
        }
        guard let groupClass = maskAt ?? groupObjAt else { return nil }
        let p = mode_t(u16(acl, groupClass + 2)) & ((mode >> 3) & 7)
        setU16(&acl, groupClass + 2, UInt16(p))
        mode = (mode & ~0o070) | (mode & (p << 3))
        return InheritedACL(mode: mode, access: extended ? acl : nil)
    }

    private static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
    private static func setU16(_ b: inout [UInt8], _ at: Int, _ v: UInt16) {
        b[at] = UInt8(v & 0xff); b[at + 1] = UInt8(v >> 8)
    }
}
