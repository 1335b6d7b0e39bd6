import Glibc
import UnionFSCore
import XCTest

/// POSIX's inheritance of a directory's default ACL (`InheritedACL`), on xattr bytes, checked
/// against what the kernel gives an entry made under such a directory (ext4, `umask 022`).
final class InheritedACLTests: XCTestCase {
    private let undefined: UInt32 = 0xffff_ffff

    private func acl(_ entries: [(UInt16, UInt16, UInt32)]) -> [UInt8] {
        var b: [UInt8] = [2, 0, 0, 0]
        for (tag, perm, id) in entries {
            b += [UInt8(tag & 0xff), UInt8(tag >> 8), UInt8(perm & 0xff), UInt8(perm >> 8)]
            b += [UInt8(id & 0xff), UInt8((id >> 8) & 0xff), UInt8((id >> 16) & 0xff), UInt8(id >> 24)]
        }
        return b
    }

    /// user::rwx user:nobody:rwx group::r-x mask::rwx other::r-x, as `setfacl -d -m u:nobody:rwx`.
    private var withNamedUser: [UInt8] {
        acl([(InheritedACL.userObj, 7, undefined), (InheritedACL.user, 7, 65534), (InheritedACL.groupObj, 5, undefined),
             (InheritedACL.mask, 7, undefined), (InheritedACL.other, 5, undefined)])
    }

    func testFileAndDirectoryUnderANamedUserEntry() throws {
        // creat(0666): the kernel gives 0664 and the mask rw- (the umask does not apply).
        let file = try XCTUnwrap(InheritedACL.inherit(withNamedUser, mode: 0o666))
        XCTAssertEqual(file.mode, 0o664)
        XCTAssertEqual(file.access, acl([(InheritedACL.userObj, 6, undefined), (InheritedACL.user, 7, 65534),
                                         (InheritedACL.groupObj, 5, undefined), (InheritedACL.mask, 6, undefined),
                                         (InheritedACL.other, 4, undefined)]))
        // mkdir(0777): 0775, the default ACL's permissions whole.
        let dir = try XCTUnwrap(InheritedACL.inherit(withNamedUser, mode: 0o777))
        XCTAssertEqual(dir.mode, 0o775)
        XCTAssertEqual(dir.access?.count, withNamedUser.count)
    }

    /// A default ACL of the three base entries only says what mode bits say: no access ACL.
    func testMinimalDefaultACLGivesModeOnly() throws {
        let minimal = acl([(InheritedACL.userObj, 7, undefined), (InheritedACL.groupObj, 0, undefined),
                           (InheritedACL.other, 0, undefined)])
        let r = try XCTUnwrap(InheritedACL.inherit(minimal, mode: 0o666))
        XCTAssertEqual(r.mode, 0o600)
        XCTAssertNil(r.access)
    }

    func testMalformedValuesAreRefused() {
        XCTAssertNil(InheritedACL.inherit([], mode: 0o666))
        XCTAssertNil(InheritedACL.inherit([1, 0, 0, 0], mode: 0o666), "version 1")
        XCTAssertNil(InheritedACL.inherit([2, 0, 0, 0, 1, 0], mode: 0o666), "a short entry")
        XCTAssertNil(InheritedACL.inherit(acl([(0x40, 7, undefined)]), mode: 0o666), "an unknown tag")
        XCTAssertNil(InheritedACL.inherit(acl([(InheritedACL.userObj, 7, undefined)]), mode: 0o666), "no group class")
    }
}
