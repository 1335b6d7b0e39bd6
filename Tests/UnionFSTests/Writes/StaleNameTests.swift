import Dispatch
import Foundation
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Issue 13 defect 3, in process: a node whose name another request has meanwhile given to a
/// whiteout, a FIFO, a device or another file. Opens and truncations must act on the node's own
/// file or fail as the kernel would (ENOENT, ESTALE), never open what now holds the name.
final class StaleNameTests: ViewTestCase {
    private var upper = ""

    private func fileSystem() throws -> UnionFileSystem {
        try fx.layer("low").file("f", "lower data")
        upper = try fx.layer("up").path
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: upper, workdir: try makeDir("work"))
        return try UnionFileSystem(stack: LayerStack(c))
    }

    /// The node of `f`, copied up (opened for writing once).
    private func copiedUpNode(_ fs: UnionFileSystem) throws -> UInt64 {
        let id = UInt64(try fs.lookup(parent: 1, name: "f").st_ino)
        fs.release(try fs.open(id, flags: O_RDWR))
        return id
    }

    private func errnoOf(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch let e as Errno { return e.rawValue } catch { return -1 }
    }

    /// Fails unless `e` is what the kernel answers for a name that no longer holds the file.
    private func assertGone(_ e: Int32, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue([ENOENT, ESTALE].contains(e), "\(what): \(String(cString: strerror(e)))", file: file, line: line)
    }

    /// `truncate` of the node, as the kernel sends it for truncate(2) (no open file).
    private func truncate(_ fs: UnionFileSystem, _ id: UInt64, to size: Int64) -> Int32 {
        var c = AttributeChanges()
        c.size = size
        return errnoOf { _ = try fs.setattr(id, c, fd: nil) }
    }

    /// Replaces upper `f` behind the node's back with what `make` makes there. With `keepOld`
    /// the old file is moved aside, not removed, so its inode number cannot be reused.
    private func replace(keepOld: Bool = false, _ make: (String) -> Int32) {
        if keepOld {
            XCTAssertEqual(rename(upper + "/f", upper + "/f.old"), 0)
        } else {
            XCTAssertEqual(unlink(upper + "/f"), 0)
        }
        XCTAssertEqual(make(upper + "/f"), 0, String(cString: strerror(errno)))
    }

    func testWhiteoutAtTheNameIsNeverOpened() throws {
        let fs = try fileSystem()
        let id = try copiedUpNode(fs)
        replace { mknod($0, S_IFCHR | 0o600, 0) }
        for flags in [O_RDONLY, O_RDWR, O_WRONLY | O_TRUNC] {
            assertGone(errnoOf { fs.release(try fs.open(id, flags: flags)) }, "open flags \(flags)")
        }
        assertGone(truncate(fs, id, to: 0), "truncate")
    }

    func testFIFOAtTheNameIsNeverOpened() throws {
        let fs = try fileSystem()
        let id = try copiedUpNode(fs)
        replace { mkfifo($0, 0o600) }
        // A reader blocked in open(2) of the FIFO is let go after 3 s by opening its other end.
        let path = upper + "/f"
        let released = DispatchSemaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.5) {
            let w = open(path, O_RDWR | O_NONBLOCK)
            if w >= 0 { usleep(100_000); close(w) }
            released.signal()
        }
        let start = Date()
        let eRead = errnoOf { fs.release(try fs.open(id, flags: O_RDONLY)) }
        let eWrite = errnoOf { fs.release(try fs.open(id, flags: O_WRONLY)) }
        let eTrunc = truncate(fs, id, to: 0)
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "an open blocked on the FIFO")
        for (what, e) in [("read", eRead), ("write", eWrite), ("truncate", eTrunc)] {
            assertGone(e, what)
        }
        _ = released.wait(timeout: .now() + 10)
    }

    func testAnotherFileAtTheNameIsNeitherOpenedNorTruncated() throws {
        let fs = try fileSystem()
        let id = try copiedUpNode(fs)
        replace(keepOld: true) { p in
            let fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { return -1 }
            _ = write(fd, "other", 5)
            return close(fd)
        }
        assertGone(errnoOf { fs.release(try fs.open(id, flags: O_RDONLY)) }, "open")
        assertGone(truncate(fs, id, to: 1), "truncate")
        assertGone(errnoOf { _ = try fs.getattr(id) }, "getattr")
        assertGone(errnoOf { _ = try fs.listxattr(id, size: 0) }, "listxattr")
        XCTAssertEqual(try String(contentsOfFile: upper + "/f", encoding: .utf8), "other", "another file was truncated")
    }
}
