import Foundation
import Glibc
import XCTest

/// `mount -t fuse.unionfs-swift overlay MNT -o lowerdir=...` end to end: mount(8) runs
/// `mount.fuse3 overlay MNT -o rw,... -t fuse.unionfs-swift`, which runs `unionfs-swift overlay MNT
/// -o ...` through /bin/sh (PATH lookup) without -f: the daemon detaches once mounted.
///
/// mount(8) (libmount) removes PATH from the helper's environment, so /bin/sh then searches its
/// default path (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin). mount.fuse3 keeps
/// PATH. Hence two tests: mount.fuse3 directly with PATH prefixed by the build directory, and the
/// full `mount -t` path with a temporary symlink in /usr/local/sbin (made only when absent).
final class MountHelperTests: MountTestCase {
    private var environmentWithBinaryInPATH: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = TestEnvironment.dirname(TestEnvironment.binary) + ":" + (env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
        return env
    }

    /// Runs `program args` (which must mount at `mnt` and return), checks the tree against kernel
    /// overlayfs, unmounts with umount(8) and checks that the detached daemon exits.
    private func assertHelperMount(_ program: String, _ args: [String], mnt: String,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        try fx.layer("top").file("t", "top").file("shared", "top").dir("d").file("d/x", "x")
        try fx.layer("bot").file("b", "bottom").file("shared", "bottom").whiteout("nothing").dir("d").file("d/y", "y")
        addDetachedMountCleanup(mnt)
        let r = try Run.program(program, args, timeout: 15, environment: environmentWithBinaryInPATH)
        XCTAssertFalse(r.timedOut, "\(program) did not return", file: file, line: line)
        XCTAssertEqual(r.status, 0, "\(program) failed: \(r.stderr)", file: file, line: line)
        guard r.status == 0, MountTable.wait(for: mnt, mounted: true, fsTypePrefix: "fuse", timeout: 10) else {
            XCTFail("nothing mounted at \(mnt)", file: file, line: line)
            return
        }
        let entry = MountTable.mounts(at: mnt).last
        XCTAssertEqual(entry?.fsType, "fuse.unionfs-swift", file: file, line: line)
        XCTAssertEqual(entry?.source, "overlay", file: file, line: line)

        let snap = try TreeSnapshot.walk(mnt)
        XCTAssertEqual(Set(snap.entries.keys), ["", "t", "shared", "b", "d", "d/x", "d/y"], file: file, line: line)
        XCTAssertEqual(try String(contentsOfFile: mnt + "/shared", encoding: .utf8), "top", file: file, line: line)
        let kernel = try kernelMount(lowers: [fx.path("top"), fx.path("bot")])
        XCTAssertTreesEqual(snap, try TreeSnapshot.walk(kernel.mountPoint), file: file, line: line)
        kernel.stop()

        let u = try Run.program("/usr/bin/umount", [mnt], timeout: 10)
        XCTAssertEqual(u.status, 0, "umount failed: \(u.stderr)", file: file, line: line)
        XCTAssertTrue(MountTable.wait(for: mnt, mounted: false, timeout: 5), file: file, line: line)
        XCTAssertTrue(waitForDaemonExit(mentioning: mnt), "the daemon should exit after the unmount", file: file, line: line)
    }

    /// mount.fuse3 as mount(8) calls it, with PATH prefixed by the build directory.
    func testMountFuse3HelperFindsBinaryInPATH() throws {
        let mnt = try makeDir("mnt")
        try assertHelperMount("/usr/sbin/mount.fuse3",
                              ["overlay", mnt, "-o", "rw," + lowerdirOption(["top", "bot"]), "-t", "fuse.unionfs-swift"],
                              mnt: mnt)
    }

    /// The full `mount -t fuse.unionfs-swift overlay MNT -o lowerdir=...`.
    func testMountTypeFuseUnionfsSwift() throws {
        let mnt = try makeDir("mnt")
        try linkBinaryOnDefaultPath()
        try assertHelperMount("/usr/bin/mount", ["-t", "fuse.unionfs-swift", "overlay", mnt,
                                                 "-o", lowerdirOption(["top", "bot"])], mnt: mnt)
    }
}
