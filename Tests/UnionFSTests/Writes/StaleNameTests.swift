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
    private func copiedUpNode(_ fs: UnionFileSystem) throws -> NodeID {
        let id = try fs.lookup(parent: 1, name: "f").node
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
    private func truncate(_ fs: UnionFileSystem, _ id: NodeID, to size: Int64) -> Int32 {
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

/// Issue 13: a directory holding one name of a hard-linked file is forgotten by the kernel (its
/// dentries pruned under memory pressure) and found again, which makes a new node object for
/// it; removing the name through the new one must still move the file's node to its other name.
final class ForgottenDirectoryLinkTests: ViewTestCase {
    func testNameRemovedThroughAForgottenAndFoundAgainDirectory() throws {
        let fs = try emptyWritableFileSystem()
        let caller = Caller(uid: 0, gid: 0)
        let s = try fs.mkdir(parent: 1, name: "s", mode: 0o755, caller: caller).node
        let d = try fs.mkdir(parent: 1, name: "d", mode: 0o755, caller: caller).node
        let created = try fs.create(parent: s, name: "h", mode: 0o644, flags: O_RDWR, caller: caller)
        let id = created.entry.node
        fs.release(created.takeDescriptor())
        _ = try fs.link(id, newParent: d, newName: "f")  // the node now uses d/f
        fs.forget(d, count: 1 << 20)
        XCTAssertEqual(try fs.lookup(parent: 1, name: "d").node, d)
        try fs.unlink(parent: d, name: "f")
        XCTAssertEqual(try fs.getattr(id).st_nlink, 1, "s/h after d/f went")
        fs.release(try fs.open(id, flags: O_RDONLY))
    }
}

/// Issue 13: the names of one hard-linked file going at once from several threads (in process,
/// so nothing serializes them as the kernel would for one directory): the name left must still
/// reach the file, with the right link count.
final class ConcurrentLinkRemovalTests: ViewTestCase {
    func testTwoNamesRemovedAtOnceLeaveTheThirdWorking() throws {
        let fs = try emptyWritableFileSystem()
        let caller = Caller(uid: 0, gid: 0)
        var dirs: [NodeID] = []
        for d in ["d1", "d2", "d3"] {
            dirs.append(try fs.mkdir(parent: 1, name: d, mode: 0o755, caller: caller).node)
        }
        for round in 0..<300 {
            let created = try fs.create(parent: dirs[0], name: "f\(round)", mode: 0o644, flags: O_RDWR, caller: caller)
            let id = created.entry.node
            fs.release(created.takeDescriptor())
            // The kernel's view: each name looked up, the last one made through the mount.
            _ = try fs.link(id, newParent: dirs[1], newName: "g\(round)")
            _ = try fs.link(id, newParent: dirs[2], newName: "h\(round)")
            let group = DispatchGroup()
            // The first name and the one in use go; the node must move to the middle one.
            for (dir, name) in [(dirs[0], "f\(round)"), (dirs[2], "h\(round)")] {
                DispatchQueue.global().async(group: group) { try? fs.unlink(parent: dir, name: name) }
            }
            XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
            let left = try fs.getattr(id)
            XCTAssertEqual(left.st_nlink, 1, "round \(round)")
            let rfd = try fs.open(id, flags: O_RDONLY)
            fs.release(rfd)
        }
    }
}

extension ViewTestCase {
    /// A writable filesystem (in process) over an empty lower.
    fileprivate func emptyWritableFileSystem() throws -> UnionFileSystem {
        _ = try fx.layer("low")
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: try fx.layer("up").path,
                                        workdir: try makeDir("work"))
        return try UnionFileSystem(stack: LayerStack(c))
    }
}
