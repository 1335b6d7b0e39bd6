import Foundation
import UnionFS
import XCTest

/// Every diff rule of docs/SEMANTICS.md §4 and case 21 of §6, on uppers written by real operations,
/// once on a kernel overlayfs mount and once on a unionfs-swift mount of the same lower. Each
/// scenario checks the exact `docker diff` lines from the upper alone, and that both full
/// comparisons (lowers vs the live mount, lowers vs the in-process UnionView of lowers + upper)
/// agree with it.
final class ChangesKernelDiffTests: ChangesTestCase {
    /// Builds the lower with `lower` (shell, in the lower dir), mounts, runs `ops` in the merged
    /// dir, and checks all three computations give `expected`.
    func check(lower: String, ops: String, expected: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        try check(lowers: ["lower": lower], ops: ops, expected: expected, file: file, line: line)
    }

    /// `check` over several lowers, given top first as (dir name, shell script that fills it).
    func check(lowers: KeyValuePairs<String, String>, ops: String, expected: [String],
               file: StaticString = #filePath, line: UInt = #line) throws {
        var paths: [String] = []
        for (name, script) in lowers {
            let l = try dir(name)
            try sh(script, in: l)
            paths.append(l)
        }
        for (kind, mount) in [("kernel", kernelMount), ("unionfs-swift", fuseMount)] {
            let (merged, upper) = try mount(paths, kind)
            try sh(ops, in: merged)
            XCTAssertEqual(try upperDiff(lowers: paths, upper: upper), expected, "\(kind): upper only", file: file, line: line)
            XCTAssertEqual(try treeDiff(lowers: paths, merged: merged), expected, "\(kind): lowers vs the mount", file: file, line: line)
            XCTAssertEqual(try viewDiff(lowers: paths, upper: upper), expected, "\(kind): lowers vs UnionView", file: file, line: line)
            unmount(merged)
            XCTAssertEqual(try upperDiff(lowers: paths, upper: upper), expected, "\(kind): upper at rest", file: file, line: line)
        }
    }

    func testAddFileMarksParentChangedNeverRoot() throws {
        try check(lower: "mkdir d; echo a > d/f", ops: "echo n > d/new; echo r > top",
                  expected: ["C /d", "A /d/new", "A /top"])
    }

    func testDeletedLowerDirIsOnlyTheDir() throws {
        try check(lower: "mkdir -p dir/b; echo 1 > dir/a; echo 2 > dir/b/c", ops: "rm -rf dir",
                  expected: ["D /dir"])
    }

    func testChmodToSameModeIsNothing() throws {
        try check(lower: "echo a > f; chmod 644 f; mkdir d; echo b > d/g", ops: "chmod 644 f; chmod 644 d/g",
                  expected: [])
    }

    func testDirectoryMtimeOnlyIsNothing() throws {
        try check(lower: "mkdir d; echo b > d/g", ops: "touch -m -d '2001-01-01 00:00:00' d",
                  expected: [])
    }

    func testModeOwnerContentAndTimeChanges() throws {
        try check(lower: "echo a > m; echo a > o; echo a > c; echo a > t; mkdir dd",
                  ops: "chmod 700 m; chown 1:1 o; echo more >> c; touch -m -d '2001-01-01 00:00:00' t; chmod 700 dd",
                  expected: ["C /c", "C /dd", "C /m", "C /o", "C /t"])
    }

    func testDeleteLowerFile() throws {
        try check(lower: "mkdir d; echo a > d/f; echo b > d/keep", ops: "rm d/f",
                  expected: ["C /d", "D /d/f"])
    }

    func testRecreatedDirHidesLowerChildren() throws {
        try check(lower: "mkdir -p d/sub; echo a > d/a; echo b > d/sub/b", ops: "rm -rf d; mkdir d; echo n > d/new",
                  expected: ["C /d", "D /d/a", "A /d/new", "D /d/sub"])
    }

    func testFileToDirectoryAndDirectoryToFile() throws {
        try check(lower: "echo a > x; mkdir -p y/z; echo b > y/z/f",
                  ops: "rm x; mkdir x; echo c > x/inner; rm -rf y; echo d > y",
                  expected: ["C /x", "A /x/inner", "C /y"])
    }

    func testNewDirInMergedParentIsAddedNotDeleted() throws {
        try check(lower: "mkdir d; echo a > d/f", ops: "mkdir -p d/new/sub; echo x > d/new/sub/f",
                  expected: ["C /d", "A /d/new", "A /d/new/sub", "A /d/new/sub/f"])
    }

    func testDeepChangeMarksEveryAncestor() throws {
        try check(lower: "mkdir -p a/b/c; echo a > a/b/c/f; echo s > a/sibling", ops: "echo x >> a/b/c/f",
                  expected: ["C /a", "C /a/b", "C /a/b/c", "C /a/b/c/f"])
    }

    func testRenameAndHardLinkAndSymlink() throws {
        try check(lower: "mkdir d; echo a > d/f; echo b > d/g; ln -s t1 l",
                  ops: "mv d/f d/moved; ln d/g d/h; rm l; ln -s target-two l",
                  expected: ["C /d", "D /d/f", "A /d/h", "A /d/moved", "C /l"])
    }

    func testCapabilityChangeIsAChange() throws {
        // A v2 capability blob: cap_net_bind_service permitted and effective.
        try check(lower: "echo a > bin; echo b > other",
                  ops: "python3 -c \"import os; os.setxattr('bin', 'security.capability', bytes([1,0,0,2, 0,4,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0]))\"",
                  expected: ["C /bin"])
    }

    func testWhiteoutOverNothingAndCreateOverWhiteout() throws {
        try check(lower: "echo a > f; mkdir d; echo b > d/g",
                  ops: "rm f; echo new > f; rm -rf d; mkdir d",
                  expected: ["C /d", "D /d/g", "C /f"])
    }

    func testThreeLayers() throws {
        try check(lowers: ["top": "mkdir -p d; echo t > d/t", "bottom": "mkdir -p d e; echo b > d/b; echo e > e/f"],
                  ops: "rm d/b; echo n > d/t; rm -rf e",
                  expected: ["C /d", "D /d/b", "C /d/t", "D /e"])
    }

    func testUpperReadAtRestAfterUnmountAndJSON() throws {
        let l = try dir("lower")
        try sh("mkdir d; echo a > d/f", in: l)
        let (merged, upper) = try kernelMount(lowers: [l])
        try sh("rm d/f; echo q > 'd/quote\"d'", in: merged)
        unmount(merged)
        let changes = try UpperChanges(lowerdirs: [l], upperdir: upper).changes()
        XCTAssertEqual(changes.map(\.description), ["C /d", "D /d/f", "A /d/quote\"d"])
        XCTAssertEqual(Change.json(changes),
                       "[{\"Kind\":\"C\",\"Path\":\"/d\"},{\"Kind\":\"D\",\"Path\":\"/d/f\"},{\"Kind\":\"A\",\"Path\":\"/d/quote\\\"d\"}]\n")
    }
}
