import Glibc
import SystemPackage
import UnionFS
import XCTest

/// One owner per descriptor: closed when the owner lets it go, kept open only by `take()`.
final class DescriptorTests: ViewTestCase {
    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) != -1 }

    func testClosedWhenLetGo() throws {
        var raw: Int32 = -1
        do {
            let d = try Descriptor.open(at: AT_FDCWD, "/dev/null", O_RDONLY)
            raw = d.rawValue
            XCTAssertTrue(isOpen(raw))
            XCTAssertNotEqual(fcntl(raw, F_GETFD) & FD_CLOEXEC, 0, "opened close-on-exec")
        }
        XCTAssertFalse(isOpen(raw), "closed at the end of its owner's scope")
    }

    func testTakeAndAdoptHandOwnershipOver() throws {
        let raw = try Descriptor.open(at: AT_FDCWD, "/dev/null", O_RDONLY).take()
        XCTAssertTrue(isOpen(raw), "take() leaves it open for the new owner (the FUSE fh)")
        let adopted = Descriptor(adopting: raw)
        let dup = try adopted.duplicate()
        adopted.close()
        XCTAssertFalse(isOpen(raw), "closed by the adopting owner")
        XCTAssertTrue(isOpen(dup.rawValue))
    }

    /// `UnionView.open` hands out the owned type: reading through it, then letting it go.
    func testViewOpenReturnsAnOwnedDescriptor() throws {
        try fx.layer("low").file("f", "hello")
        let v = try view(["low"])
        var raw: Int32 = -1
        do {
            let file = try v.open("f")
            raw = file.rawValue
            var buf = [UInt8](repeating: 0, count: 8)
            XCTAssertEqual(pread(file.rawValue, &buf, 8, 0), 5)
        }
        XCTAssertFalse(isOpen(raw))
    }
}
