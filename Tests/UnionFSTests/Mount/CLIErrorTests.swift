import Foundation
import Glibc
import XCTest

/// Bad input through the CLI: non-zero exit, ONE stderr line naming the problem, nothing mounted.
final class CLIErrorTests: MountTestCase {
    /// Runs the binary with `args` (in the foreground, so a wrong mount cannot escape), then checks
    /// the exit status, the one stderr line and the mount table at `mountPoint`.
    func assertFails(_ args: [String], mountPoint: String, mentions parts: [String], mountsBefore: Int = 0,
                     through wrapper: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        addCleanup { MountTable.forceUnmount(mountPoint) }
        let command = wrapper + [TestEnvironment.binary] + args
        let r = try Run.program(command[0], Array(command.dropFirst()), timeout: 10)
        XCTAssertFalse(r.timedOut, "still running after 10 s (did it mount?)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "should exit non-zero", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "exactly one line on stderr, got:\n\(r.stderr)", file: file, line: line)
        let msg = r.stderrLines.first ?? ""
        for p in parts {
            XCTAssertTrue(msg.contains(p), "stderr '\(msg)' should mention '\(p)'", file: file, line: line)
        }
        let after = MountTable.mounts(at: mountPoint)
        XCTAssertEqual(after.count, mountsBefore, "mounts at \(mountPoint): \(after.map(\.fsType))", file: file, line: line)
        XCTAssertFalse(after.contains { $0.fsType.hasPrefix("fuse") }, "a FUSE mount was left", file: file, line: line)
    }

    func testMissingLowerDirectory() throws {
        let mnt = try makeDir("mnt"), missing = tmp + "/no-such-lower"
        try assertFails(["-f", "-o", "lowerdir=\(missing)", mnt], mountPoint: mnt, mentions: [missing])
        // Daemon mode reports the same way (the check runs before forking).
        try assertFails(["-o", "lowerdir=\(missing)", mnt], mountPoint: mnt, mentions: [missing])
    }

    func testFileGivenAsLayer() throws {
        let mnt = try makeDir("mnt"), good = try makeDir("good"), file = tmp + "/plain-file"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        try assertFails(["-f", "-o", "lowerdir=\(good):\(file)", mnt], mountPoint: mnt, mentions: [file, "not a directory"])
    }

    func testBusyMountpoint() throws {
        let mnt = try makeDir("mnt"), lower = try makeDir("lower")
        guard Glibc.mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == 0 else {
            throw XCTSkip("mount tmpfs: \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(mnt) }
        try assertFails(["-f", "-o", "lowerdir=\(lower)", mnt], mountPoint: mnt, mentions: [mnt, "busy"], mountsBefore: 1)
        XCTAssertEqual(MountTable.mounts(at: mnt).first?.fsType, "tmpfs")
    }

    func testMissingMountpoint() throws {
        let lower = try makeDir("lower"), mnt = tmp + "/no-such-mountpoint"
        try assertFails(["-f", "-o", "lowerdir=\(lower)", mnt], mountPoint: mnt, mentions: [mnt])
    }

    func testMountpointIsAFile() throws {
        let lower = try makeDir("lower"), mnt = tmp + "/file-mountpoint"
        XCTAssertTrue(FileManager.default.createFile(atPath: mnt, contents: nil))
        try assertFails(["-f", "-o", "lowerdir=\(lower)", mnt], mountPoint: mnt, mentions: [mnt, "not a directory"])
    }

    func testUnknownOption() throws {
        let lower = try makeDir("lower"), mnt = try makeDir("mnt")
        try assertFails(["-f", "-o", "lowerdir=\(lower),bogus_option", mnt], mountPoint: mnt, mentions: ["bogus_option"])
    }

    func testMissingLowerdirOption() throws {
        let mnt = try makeDir("mnt")
        try assertFails(["-f", "-o", "allow_other", mnt], mountPoint: mnt, mentions: ["lowerdir"])
    }

    /// Without /dev/fuse (hidden by an empty /dev in a private mount namespace): one line naming it.
    func testNoDevFuse() throws {
        let lower = try makeDir("lower"), mnt = try makeDir("mnt")
        let script = "mount -t tmpfs none /dev && exec \"$0\" \"$@\""
        try assertFails(["-f", "-o", "lowerdir=\(lower)", mnt], mountPoint: mnt, mentions: ["/dev/fuse"],
                        through: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script])
    }

    /// A user who may not read a layer gets one line naming the layer and the reason.
    func testNoPermissionOnLayer() throws {
        let lower = try makeDir("private-lower"), mnt = try makeDir("mnt")
        XCTAssertEqual(chmod(lower, 0o700), 0)
        XCTAssertEqual(chmod(tmp, 0o755), 0)
        XCTAssertEqual(chown(mnt, 65534, 65534), 0)
        try assertFails(["-f", "-o", "lowerdir=\(lower)", mnt], mountPoint: mnt, mentions: [lower, "permission denied"],
                        through: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    }

    /// Positive control for the helper: a good command line does mount (and is then stopped).
    func testGoodCommandLineMounts() throws {
        try fx.layer("l").file("f", "f")
        let m = try fuseMount(lowerdirOption(["l"]))
        XCTAssertTrue(MountTable.isMounted(m.mountPoint, fsTypePrefix: "fuse.unionfs-swift"))
        XCTAssertEqual(try String(contentsOfFile: m.mountPoint + "/f", encoding: .utf8), "f")
        m.stop()
        XCTAssertFalse(MountTable.isMounted(m.mountPoint))
        XCTAssertFalse(m.process.isRunning, "daemon should exit after the unmount")
    }
}
