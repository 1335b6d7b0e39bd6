import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Names are checked once, where they come in (`FileName.validating`), and node ids travel as
/// `NodeID`, apart from the inode number the mount shows.
final class FileNameTests: ViewTestCase {
    private func check(_ name: String) -> Errno? {
        do { try FileName.validating(name) { (_) throws(Errno) in }; return nil } catch { return error }
    }

    func testValidationRules() {
        XCTAssertNil(check("a"))
        XCTAssertNil(check("..."))
        XCTAssertNil(check(".a"))
        XCTAssertNil(check(String(repeating: "x", count: 255)))
        XCTAssertEqual(check(String(repeating: "x", count: 256)), .fileNameTooLong)
        XCTAssertEqual(check(""), .noSuchFileOrDirectory)
        XCTAssertEqual(check("."), .invalidArgument)
        XCTAssertEqual(check(".."), .invalidArgument)
        XCTAssertEqual(check("a/b"), .invalidArgument)
        XCTAssertEqual(check("/"), .invalidArgument)
        XCTAssertEqual(check("a\0b"), .invalidArgument)
    }

    /// The borrowed name is the bytes it was made from, NUL-terminated for `*at` calls, and
    /// compares with an owned `Name` without copying.
    func testBorrowedBytesAndOwnedCopy() throws {
        try FileName.validating("héllo") { (n) throws(Errno) in
            XCTAssertEqual(n.count, 6)
            XCTAssertEqual(strlen(n.cString), 6)
            XCTAssertEqual(n.description, "héllo")
            let owned = Name(n)
            XCTAssertTrue(n.equals(owned))
            XCTAssertFalse(n.equals(try Name("hello")))
            owned.withFileName { m in XCTAssertEqual(m.description, "héllo") }
        }
    }


    /// An owned `Name` keeps its bytes and count in one block (`NameBytes`): equality and hashing
    /// go by bytes, a 255-byte name (the count's largest value) keeps every byte and its NUL, and
    /// the derived names (`prefixed`, `dropFirst`) are new names of the right bytes.
    func testOwnedNameBytesEqualityAndDerivedNames() throws {
        let long = String(repeating: "z", count: 255)
        let a = try Name(long), b = try Name(long)
        XCTAssertEqual(a.count, 255)
        XCTAssertEqual(a.withCString { strlen($0) }, 255)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        XCTAssertNotEqual(try Name("ab"), try Name("abc"))
        XCTAssertNotEqual(try Name("abc"), try Name("abd"))
        XCTAssertEqual(Set([try Name("x"), try Name("x"), try Name("y")]).count, 2)

        let wh = try XCTUnwrap(try Name("file").prefixed(".wh."))
        XCTAssertEqual(wh.description, ".wh.file")
        XCTAssertTrue(wh.hasPrefix(".wh."))
        XCTAssertEqual(wh.dropFirst(4), try Name("file"))
        XCTAssertNil(wh.dropFirst(8))
        XCTAssertNil(a.prefixed(".wh."))  // would pass NAME_MAX
        XCTAssertTrue(try Name("..").isDotOrDotDot)
        XCTAssertFalse(try Name("...").isDotOrDotDot)
        XCTAssertEqual(try Name("héllo").bytes.count, 6)
    }
    /// The core refuses `.` and `..` as names (the kernel resolves those itself; a name that
    /// reached a layer as `.` would give a directory a second node).
    func testCoreRefusesDotNames() throws {
        try fx.layer("low").file("f", "x")
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: try makeDir("up"), workdir: try makeDir("work"))
        let fs = try UnionFileSystem(stack: LayerStack(c))
        XCTAssertErrno([.invalidArgument], { _ = try fs.lookup(parent: .root, name: ".") })
        XCTAssertErrno([.invalidArgument], { _ = try fs.mkdir(parent: .root, name: "..", mode: 0o755, caller: Caller(uid: 0, gid: 0)) })
        XCTAssertErrno([.fileNameTooLong], { _ = try fs.lookup(parent: .root, name: String(repeating: "y", count: 300)) })
    }

    /// A lower file with two names on a writable mount: a node per name (copy-up will make
    /// them two files), both showing the file's one inode number in `st_ino`.
    func testLowerHardLinkNodesShowOneInodeNumber() throws {
        try fx.layer("low").file("a", "x")
        XCTAssertEqual(Glibc.link(fx.path("low") + "/a", fx.path("low") + "/b"), 0)
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: try makeDir("up"), workdir: try makeDir("work"))
        let fs = try UnionFileSystem(stack: LayerStack(c))
        let a = try fs.lookup(parent: .root, name: "a"), b = try fs.lookup(parent: .root, name: "b")
        XCTAssertNotEqual(a.node, b.node)
        XCTAssertEqual(a.attributes.st_ino, b.attributes.st_ino)
        XCTAssertNotEqual(UInt64(a.attributes.st_ino), a.node.rawValue, "the per-name node id is not the inode number")
        XCTAssertEqual(try fs.getattr(a.node).st_ino, a.attributes.st_ino)
        var lower = stat()
        XCTAssertEqual(lstat(fx.path("low") + "/a", &lower), 0)
        XCTAssertEqual(a.attributes.st_ino, lower.st_ino)
    }
}
