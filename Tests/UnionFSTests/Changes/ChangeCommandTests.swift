import Foundation
import XCTest

/// The `diff`, `commit` and `apply` subcommands, run as the built `unionfs-swift` binary.
final class ChangesCommandTests: ChangesTestCase {
    /// Runs the binary built next to the test bundle; skips when it was not built.
    func cli(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var binary = bundleDir.appendingPathComponent("unionfs-swift")
        if !FileManager.default.fileExists(atPath: binary.path) {
            binary = bundleDir.deletingLastPathComponent().appendingPathComponent("unionfs-swift")
        }
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("unionfs-swift not built next to \(bundleDir.path)")
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testDiffPrintsDockerLinesAndIgnoresWorkdirLeftovers() throws {
        let l = try dir("lower"), u = try dir("upper"), w = try dir("work/work")
        try sh("mkdir d; echo a > d/a; echo b > b", in: l)
        try sh("mkdir d; mknod d/a c 0 0; echo n > new", in: u)
        try sh("echo junk > '#1f'; mkdir '#20'", in: w)
        let r = try cli(["diff", "-o", "lowerdir=\(l),upperdir=\(u),workdir=\(root)/work"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "C /d\nD /d/a\nA /new\n")
        XCTAssertEqual(r.err, "")
        let j = try cli(["diff", "--json", "-o", "lowerdir=\(l),upperdir=\(u)"])
        XCTAssertEqual(j.out, "[{\"Kind\":\"C\",\"Path\":\"/d\"},{\"Kind\":\"D\",\"Path\":\"/d/a\"},{\"Kind\":\"A\",\"Path\":\"/new\"}]\n")
    }

    func testDiffBadInputIsOneLineAndNonZero() throws {
        let l = try dir("lower")
        for args in [["diff", "-o", "lowerdir=\(l)"],
                     ["diff", "-o", "lowerdir=\(root)/missing,upperdir=\(l)"],
                     ["diff", "-o", "lowerdir=\(l),upperdir=\(root)/missing"],
                     ["diff", "-o", "lowerdir=\(l),upperdir=\(l)"],
                     ["diff", "-o", "bogus"]] {
            let r = try cli(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertEqual(r.out, "")
            XCTAssertEqual(r.err.filter { $0 == "\n" }.count, 1, "one line: \(r.err)")
            XCTAssertTrue(r.err.hasPrefix("unionfs-swift: "), r.err)
        }
    }

    func testCommitAndApplyCommands() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("mkdir d; echo a > d/a", in: l)
        try sh("mkdir d; mknod d/a c 0 0; echo n > d/n", in: u)
        let c = try cli(["commit", "-o", "lowerdir=\(l),upperdir=\(u)", "--output", "layer.tar.gz", "--compress", "gzip"])
        XCTAssertEqual(c.status, 0, c.err)
        XCTAssertEqual(c.err, "", "no progress on a pipe")
        let lines = c.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 3, c.out)
        XCTAssertTrue(lines[0].hasPrefix("diffID sha256:") && lines[0].count == 14 + 64, c.out)
        XCTAssertTrue(lines[1].hasPrefix("digest sha256:"), c.out)
        let again = try cli(["commit", "-o", "lowerdir=\(l),upperdir=\(u)", "--output", "again.tar.gz", "--compress", "gzip", "--quiet"])
        XCTAssertEqual(again.out, c.out, "same upper, same digests")
        try sh("cp -a lower flat")
        let a = try cli(["apply", "--flatten", "layer.tar.gz", "flat"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(try sh("find flat | sort"), "flat\nflat/d\nflat/d/n\n")
        let bad = try cli(["apply", "missing.tar", "x"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.err.filter { $0 == "\n" }.count, 1, bad.err)
    }

    func testDiffExitCodeSaysWhetherThereAreChanges() throws {
        let l = try dir("lower"), u = try dir("upper"), empty = try dir("empty")
        try sh("echo a > f", in: l)
        // A size that differs: same-size files written within one kernel clock tick have the
        // same mtime, and then count as unchanged (docs/SEMANTICS.md §4); failed once in CI.
        try sh("echo bb > f", in: u)
        XCTAssertEqual(try cli(["diff", "--exit-code", "-o", "lowerdir=\(l),upperdir=\(u)"]).status, 1)
        XCTAssertEqual(try cli(["diff", "--exit-code", "-o", "lowerdir=\(l),upperdir=\(empty)"]).status, 0)
        let bad = try cli(["diff", "--exit-code", "-o", "lowerdir=\(l),upperdir=\(root)/missing"])
        XCTAssertEqual(bad.status, 2, "trouble is 2 when 1 means changes")
        XCTAssertTrue(bad.err.hasPrefix("unionfs-swift: upperdir"), bad.err)
        XCTAssertEqual(try cli(["diff", "-o", "lowerdir=\(l),upperdir=\(u)"]).status, 0, "changes are no error without the flag")
    }

    func testCommitAndApplyJSON() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("echo a > f", in: l)
        try sh("echo bb > f; mkdir n", in: u)
        let c = try cli(["commit", "--json", "-o", "lowerdir=\(l),upperdir=\(u)", "--output", "layer.tar"])
        XCTAssertEqual(c.status, 0, c.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(c.out.utf8)) as? [String: Any], c.out)
        XCTAssertEqual((object["diffID"] as? String)?.count, 71)
        XCTAssertEqual(object["diffID"] as? String, object["digest"] as? String, "uncompressed: one digest")
        XCTAssertEqual(object["entries"] as? Int, 2)
        let size = try FileManager.default.attributesOfItem(atPath: root + "/layer.tar")[.size] as? Int
        XCTAssertEqual(object["size"] as? Int, size)
        let a = try cli(["apply", "--json", "layer.tar", "as-layer"])
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertEqual(a.out, "{\"entries\":2,\"bytes\":3}\n")
    }

    /// On a terminal (a pty from script(1)) commit shows progress with a rate; --quiet does not.
    func testProgressOnlyOnATerminal() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("no script(1)") }
        let l = try dir("lower"), u = try dir("upper")
        try sh("echo a > f", in: l)
        try sh("head -c 3000000 /dev/zero > big; mkdir d; echo x > d/x", in: u)
        let binary = TestEnvironment.binary
        let base = "\(binary) commit -o lowerdir=\(l),upperdir=\(u) --output"
        let shown = try sh("script -qec '\(base) a.tar' /dev/null")
        XCTAssertTrue(shown.contains("committed ") && shown.contains("MiB/s"), shown)
        XCTAssertTrue(shown.contains("diffID sha256:"), shown)
        let quiet = try sh("script -qec '\(base) b.tar --quiet' /dev/null")
        XCTAssertFalse(quiet.contains("committed "), quiet)
        XCTAssertTrue(quiet.contains("diffID sha256:"), quiet)
    }
}
