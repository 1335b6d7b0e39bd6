import Foundation
import Glibc
import XCTest

/// Base for write-side mount tests: a writable unionfs-swift mount over fixture lowers, with
/// helpers that reach the same path on the mount (`m`) and in the upper dir (`u`), and checks
/// that the upper is in the kernel's on-disk form and shows the same tree under kernel overlayfs.
class WriteTestCase: MountTestCase {
    var mount: FuseMount!
    var lowers: [String] = []
    var upperDir = ""
    var workDir = ""

    /// Mounts `lowers` (fixture layer names, top first) with a fresh upper and workdir.
    @discardableResult
    func mountWritable(_ lowers: [String], extraOptions: String = "", name: String = "fuse") throws -> FuseMount {
        self.lowers = lowers.map { fx.path($0) }
        upperDir = try makeDir(name + "-upper")
        workDir = try makeDir(name + "-work")
        mount = try fuseMount(lowerdirOption(lowers) + ",upperdir=\(upperDir),workdir=\(workDir)" + extraOptions,
                              name: name)
        return mount
    }

    /// `rel` on the mount.
    func m(_ rel: String) -> String { rel.isEmpty ? mount.mountPoint : mount.mountPoint + "/" + rel }
    /// `rel` in the upper dir.
    func u(_ rel: String) -> String { rel.isEmpty ? upperDir : upperDir + "/" + rel }

    /// Fails unless the upper holds nothing docs/SEMANTICS.md §1 forbids.
    func assertUpperWellFormed(namespace: String = "trusted", userNames: Set<String> = [],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let problems = try UpperForm.problems(upper: upperDir, lowers: lowers, namespace: namespace,
                                              userNames: userNames)
        XCTAssertTrue(problems.isEmpty, "upper not in kernel form:\n" + problems.joined(separator: "\n"),
                      file: file, line: line)
    }

    /// Snapshots the mount, unmounts it, checks the upper's form, then mounts the upper over the
    /// same lowers with kernel overlayfs (as a read-only top layer, so nothing is changed) and
    /// requires the same tree (docs/SEMANTICS.md §6 case 22). Returns the mount's snapshot.
    @discardableResult
    func finishAndCompareWithKernel(namespace: String = "trusted", userNames: Set<String> = [],
                                    file: StaticString = #filePath, line: UInt = #line) throws -> TreeSnapshot {
        let mine = try TreeSnapshot.walk(mount.mountPoint)
        mount.stop()
        try assertUpperWellFormed(namespace: namespace, userNames: userNames, file: file, line: line)
        if namespace == "trusted" {
            let k = try kernelMount(lowers: [upperDir] + lowers, name: "kernel-check-\(UUID().uuidString.prefix(8))")
            let theirs = try TreeSnapshot.walk(k.mountPoint)
            k.stop()
            XCTAssertTreesEqual(mine, theirs, ignoringDirectorySize: true, "(mount vs kernel over its upper)",
                                file: file, line: line)
        }
        return mine
    }

    /// errno of a failed call, 0 on success.
    func errnoOf(_ rc: Int32) -> Int32 { rc < 0 ? errno : 0 }

    /// Writes `content` to `path` (create or truncate).
    func put(_ path: String, _ content: String, flags: Int32 = O_WRONLY | O_CREAT | O_TRUNC,
             file: StaticString = #filePath, line: UInt = #line) {
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else {
            XCTFail("open \(path): \(String(cString: strerror(errno)))", file: file, line: line); return
        }
        defer { close(fd) }
        let bytes = Array(content.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }, bytes.count,
                       "write \(path)", file: file, line: line)
    }

    /// The content of `path`, nil when it cannot be read.
    func text(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    func exists(_ path: String) -> Bool { var st = stat(); return lstat(path, &st) == 0 }

    func lstatOf(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> stat {
        var st = stat()
        XCTAssertEqual(lstat(path, &st), 0, "lstat \(path): \(String(cString: strerror(errno)))", file: file, line: line)
        return st
    }

    /// Sorted names in a directory (through readdir).
    func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// Runs a shell script with `$PWD` = `dir`; fails the test on a non-zero exit.
    @discardableResult
    func sh(_ script: String, in dir: String, timeout: TimeInterval = 20,
            file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let r = try Run.program("/bin/sh", ["-c", "cd \"$0\" && set -e\n" + script, dir], timeout: timeout)
        XCTAssertFalse(r.timedOut, "script timed out: \(script)", file: file, line: line)
        XCTAssertEqual(r.status, 0, "script failed in \(dir): \(script)\n\(r.stderr)", file: file, line: line)
        return r
    }
}
