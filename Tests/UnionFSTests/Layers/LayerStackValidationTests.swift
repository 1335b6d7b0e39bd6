import Foundation
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Opening a `LayerStack` checks what a user can get wrong, each with a message naming it.
final class LayerStackValidationTests: TempDirTestCase {
    /// Asserts that opening `c` fails with a message containing every one of `parts`.
    func assertRejected(_ c: LayerStackConfiguration, mentions parts: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try LayerStack(c)
            XCTFail("expected a ConfigurationError mentioning \(parts)", file: file, line: line)
        } catch {
            for p in parts {
                XCTAssertTrue(error.message.contains(p), "message '\(error.message)' should mention '\(p)'",
                              file: file, line: line)
            }
            XCTAssertFalse(error.message.contains("\n"), "one line: \(error.message)", file: file, line: line)
        }
    }

    func testMissingLowerDirectory() throws {
        let good = try makeDir("good")
        let missing = tmp + "/does-not-exist"
        assertRejected(LayerStackConfiguration(lowerdirs: [good, missing]),
                       mentions: ["lowerdir", missing, "no such directory"])
    }

    func testFileGivenAsLayer() throws {
        let file = tmp + "/a-file"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        assertRejected(LayerStackConfiguration(lowerdirs: [file]), mentions: [file, "not a directory"])
    }

    func testEmptyLowerdir() throws {
        assertRejected(LayerStackConfiguration(lowerdirs: []), mentions: ["lowerdir", "empty"])
        assertRejected(LayerStackConfiguration(lowerdirs: [""]), mentions: ["lowerdir", "empty"])
    }

    func testSameDirectoryTwice() throws {
        let a = try makeDir("a")
        assertRejected(LayerStackConfiguration(lowerdirs: [a, a]), mentions: ["same directory", a])
        // The same directory under another spelling is still the same directory.
        assertRejected(LayerStackConfiguration(lowerdirs: [a, a + "/."]), mentions: ["same directory"])
        let up = try makeDir("up"), work = try makeDir("work")
        assertRejected(LayerStackConfiguration(lowerdirs: [up], upperdir: up, workdir: work),
                       mentions: ["same directory", up])
    }

    func testWorkdirOnAnotherFilesystem() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("mounting tmpfs needs root") }
        let lower = try makeDir("lower"), upper = try makeDir("upper"), fs = try makeDir("tmpfs")
        guard Glibc.mount("tmpfs", fs, "tmpfs", 0, "size=1m") == 0 else {
            throw XCTSkip("mount tmpfs: \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(fs) }
        let work = fs + "/work"
        XCTAssertEqual(mkdir(work, 0o755), 0)
        assertRejected(LayerStackConfiguration(lowerdirs: [lower], upperdir: upper, workdir: work),
                       mentions: ["not on the same filesystem", work, upper])
    }

    func testWorkdirInsideUpper() throws {
        let lower = try makeDir("lower"), upper = try makeDir("upper"), work = try makeDir("upper/deeper/work")
        assertRejected(LayerStackConfiguration(lowerdirs: [lower], upperdir: upper, workdir: work),
                       mentions: ["workdir", "inside upperdir", work])
    }

    func testUpperInsideWorkdir() throws {
        let lower = try makeDir("lower"), work = try makeDir("work"), upper = try makeDir("work/upper")
        assertRejected(LayerStackConfiguration(lowerdirs: [lower], upperdir: upper, workdir: work),
                       mentions: ["upperdir", "inside workdir", upper])
    }

    func testUpperWithoutWorkdirAndWorkdirWithoutUpper() throws {
        let lower = try makeDir("lower"), upper = try makeDir("upper"), work = try makeDir("work")
        assertRejected(LayerStackConfiguration(lowerdirs: [lower], upperdir: upper), mentions: ["workdir"])
        assertRejected(LayerStackConfiguration(lowerdirs: [lower], workdir: work), mentions: ["upperdir"])
    }

    /// A valid writable stack: upper at index 0, lowers after it, staging prepared in workdir.
    func testValidStackOrder() throws {
        let l1 = try makeDir("l1"), l2 = try makeDir("l2"), upper = try makeDir("upper"), work = try makeDir("work")
        XCTAssertTrue(FileManager.default.createFile(atPath: work + "/stale", contents: nil))
        let s = try LayerStack(LayerStackConfiguration(lowerdirs: [l1, l2], upperdir: upper, workdir: work))
        XCTAssertEqual(s.layers.map(\.path), [upper, l1, l2])
        XCTAssertEqual(s.layers.map(\.index), [0, 1, 2])
        XCTAssertEqual(s.layers.map(\.isUpper), [true, false, false])
        XCTAssertTrue(s.isWritable)
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/work", isDirectory: &isDir) && isDir.boolValue)
        let ro = try LayerStack(LayerStackConfiguration(lowerdirs: [l1, l2]))
        XCTAssertFalse(ro.isWritable)
        XCTAssertNil(ro.upper)
    }

    /// 600 lower layers (more than the kernel's 500) open and resolve top to bottom.
    func testSixHundredLowerLayers() throws {
        var lowers: [String] = []
        for i in 0..<600 {
            let d = try makeDir("l/\(i)")
            lowers.append(d)
            if i % 100 == 0 || i == 599 {
                XCTAssertTrue(FileManager.default.createFile(atPath: d + "/f\(i)", contents: Data("\(i)".utf8)))
            }
        }
        XCTAssertTrue(FileManager.default.createFile(atPath: lowers[599] + "/f0", contents: Data("bottom".utf8)))
        let v = try UnionView(LayerStackConfiguration(lowerdirs: lowers))
        XCTAssertEqual(v.stack.layers.count, 600)
        XCTAssertEqual(String(decoding: try v.readAll("f599"), as: UTF8.self), "599")
        XCTAssertEqual(String(decoding: try v.readAll("f0"), as: UTF8.self), "0", "the top layer wins")
        XCTAssertEqual(Set(try v.list("").map(\.name.description)),
                       Set(["f0", "f100", "f200", "f300", "f400", "f500", "f599"]))
    }
}
