import Foundation
import Glibc
import XCTest

/// Issue 4, crash safety: `kill -9` of the daemon in the middle of a copy-up leaves the upper
/// valid (the old version or the complete new one, never a partial file), junk only in the
/// workdir, cleared at the next mount, and an upper the kernel still mounts.
final class CrashTests: WriteTestCase {
    private static let big = 1 << 30

    /// Polls the workdir's staging dir until `ready` says so (bounded); true when it did.
    private func waitForStaging(timeout: TimeInterval, _ ready: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for n in names(workDir + "/work") where ready(workDir + "/work/" + n) { return true }
            usleep(500)
        }
        return false
    }

    /// Kills the daemon, unmounts what is left, reaps the writer (bounded).
    private func crash(_ writer: ChildProcess) {
        kill(mount.process.pid, SIGKILL)
        _ = mount.process.wait(timeout: 5)
        mount.stop()
        if !writer.wait(timeout: 10) { writer.stop() }
    }

    /// Remounts the same upper and workdir and checks that the staging area was emptied.
    private func remount(file: StaticString = #filePath, line: UInt = #line) throws -> FuseMount {
        mount = try fuseMount("lowerdir=" + lowers.joined(separator: ":") + ",upperdir=\(upperDir),workdir=\(workDir)",
                              name: "fuse-again", timeout: 40)  // a large staged file is cleared first
        XCTAssertEqual(names(workDir + "/work"), [], "workdir junk not cleaned at mount", file: file, line: line)
        return mount
    }

    private func same(_ a: String, _ b: String, bytes: Int) throws -> Bool {
        try Run.program("/usr/bin/cmp", ["-s", "-n", String(bytes), a, b], timeout: 60).status == 0
    }

    /// kill -9 during the copy-up of a 1 GiB file (real data, no holes). Layers, upper and
    /// workdir are on a tmpfs, so that gigabytes of writeback do not slow the machine after.
    func testKillDuringLargeCopyUp() throws {
        let ram = try makeDir("ram")
        XCTAssertEqual(Glibc.mount("tmpfs", ram, "tmpfs", 0, "size=3g"), 0, String(cString: strerror(errno)))
        addCleanup { MountTable.forceUnmount(ram) }
        let low = try LayerFixture(root: ram).layer("low")
        try low.file("small", "s")
        let r = try Run.program("/bin/sh", ["-c", "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c \(Self.big) > \"$0\"",
                                            low.abs("big")], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(lstatOf(low.abs("big")).st_size, off_t(Self.big))
        lowers = [low.path]
        upperDir = try makeDir("ram/upper")
        workDir = try makeDir("ram/work")
        mount = try fuseMount("lowerdir=\(low.path),upperdir=\(upperDir),workdir=\(workDir)")
        let writer = try ChildProcess("/bin/sh", ["-c", "printf new >> \"$0\"", m("big")],
                                      stdoutPath: tmp + "/writer.out", stderrPath: tmp + "/writer.err")
        // Kill once the staging copy holds some data but not all of it.
        let sawPartial = waitForStaging(timeout: 20) { p in
            var st = stat()
            return lstat(p, &st) == 0 && st.st_size > 0 && st.st_blocks * 512 < off_t(Self.big) / 2
        }
        crash(writer)
        XCTAssertTrue(sawPartial, "the copy-up was never seen in progress")
        XCTAssertFalse(MountTable.isMounted(mount.mountPoint))

        try remount()
        let shown = lstatOf(m("big")).st_size
        XCTAssertTrue(shown == off_t(Self.big) || shown == off_t(Self.big + 3), "partial file visible: size \(shown)")
        XCTAssertTrue(try same(m("big"), low.abs("big"), bytes: Self.big), "merged big differs from the lower data")
        if exists(u("big")) {
            let st = lstatOf(u("big"))
            XCTAssertTrue(st.st_size == off_t(Self.big) || st.st_size == off_t(Self.big + 3), "partial upper file: \(st.st_size)")
            XCTAssertTrue(try same(u("big"), low.abs("big"), bytes: Self.big), "upper big is not a complete copy")
        }
        XCTAssertEqual(names(m("")), ["big", "small"])
        mount.stop()
        try assertUpperWellFormed()
        let k = try kernelMount(lowers: [upperDir] + lowers)
        XCTAssertEqual(names(k.mountPoint), ["big", "small"])
        XCTAssertEqual(lstatOf(k.mountPoint + "/big").st_size, shown)
        k.stop()
        XCTAssertEqual(lstatOf(low.abs("big")).st_size, off_t(Self.big), "lower changed")
    }

    /// kill -9 while renaming a directory with a large lower subtree (copied up whole): the old
    /// tree or the moved one, complete either way.
    func testKillDuringDirectoryRenameCopyUp() throws {
        let low = try fx.layer("low")
        var expected: Set<String> = []
        for d in 0..<30 {
            for f in 0..<100 {
                let rel = "tree/d\(d)/f\(f)"
                try low.file(rel, String(repeating: "x", count: 2000 + f))
                expected.insert("d\(d)/f\(f)")
            }
            expected.insert("d\(d)")
        }
        try mountWritable(["low"])
        let writer = try ChildProcess("/bin/mv", [m("tree"), m("moved")],
                                      stdoutPath: tmp + "/writer.out", stderrPath: tmp + "/writer.err")
        // Kill once part of the subtree has been copied into the upper.
        let deadline = Date().addingTimeInterval(20)
        var sawPartial = false
        while Date() < deadline && !sawPartial {
            sawPartial = names(u("tree")).count >= 3 && writer.isRunning
            if !sawPartial { usleep(500) }
        }
        crash(writer)
        XCTAssertTrue(sawPartial, "the subtree copy-up was never seen in progress")

        try remount()
        let snap = try TreeSnapshot.walk(m(""))
        let inTree = Set(snap.entries.keys.filter { $0.hasPrefix("tree/") }.map { String($0.dropFirst(5)) })
        let inMoved = Set(snap.entries.keys.filter { $0.hasPrefix("moved/") }.map { String($0.dropFirst(6)) })
        if snap.entries["moved"] != nil {
            XCTAssertNil(snap.entries["tree"], "both the old and the new name exist")
            XCTAssertEqual(inMoved, expected, "partial directory after the crash")
        } else {
            XCTAssertEqual(inTree, expected, "the old tree lost entries")
        }
        mount.stop()
        try assertUpperWellFormed()
        let k = try kernelMount(lowers: [upperDir] + lowers)
        XCTAssertTreesEqual(try TreeSnapshot.walk(k.mountPoint), snap, ignoringDirectorySize: true)
        k.stop()
    }
}
