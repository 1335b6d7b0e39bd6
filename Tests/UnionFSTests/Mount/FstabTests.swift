import Foundation
import Glibc
import XCTest

/// An fstab line `overlay MNT fuse.unionfs-swift lowerdir=…,upperdir=…,workdir=… 0 0` mounted with
/// `mount MNT`. The line lives in a temporary file given to mount(8) with `-T`, never in the real
/// /etc/fstab. mount(8) then runs mount.fuse3, which starts the daemon detached, as for
/// `mount -t fuse.unionfs-swift` (MountHelperTests).
final class FstabTests: MountTestCase {
    func testFstabLineMountsWithMountT() throws {
        try fx.layer("top").file("t", "top").file("shared", "top").dir("d").file("d/x", "x")
        try fx.layer("bot").file("b", "bottom").file("shared", "bottom").whiteout("gone").dir("d").file("d/y", "y")
        let upper = try makeDir("upper"), work = try makeDir("work"), mnt = try makeDir("mnt")
        try linkBinaryOnDefaultPath()
        addDetachedMountCleanup(mnt)

        let options = lowerdirOption(["top", "bot"]) + ",upperdir=\(upper),workdir=\(work)"
        let fstab = tmp + "/fstab"
        try "# test fstab (mount -T)\noverlay \(mnt) fuse.unionfs-swift \(options) 0 0\n"
            .write(toFile: fstab, atomically: true, encoding: .utf8)

        // Only the mount point on the command line: type, source and options come from the file.
        let r = try Run.program("/usr/bin/mount", ["-T", fstab, mnt], timeout: 15)
        XCTAssertFalse(r.timedOut, "mount -T did not return")
        XCTAssertEqual(r.status, 0, "mount -T \(fstab) \(mnt) failed: \(r.stderr)")
        guard r.status == 0, MountTable.wait(for: mnt, mounted: true, fsTypePrefix: "fuse", timeout: 10) else {
            return XCTFail("nothing mounted at \(mnt)")
        }
        let entry = MountTable.mounts(at: mnt).last
        XCTAssertEqual(entry?.fsType, "fuse.unionfs-swift")
        XCTAssertEqual(entry?.source, "overlay")

        // The merged tree, as kernel overlayfs shows the same layers.
        let snap = try TreeSnapshot.walk(mnt)
        XCTAssertEqual(Set(snap.entries.keys), ["", "t", "shared", "b", "d", "d/x", "d/y"])
        XCTAssertEqual(try String(contentsOfFile: mnt + "/shared", encoding: .utf8), "top")
        let kernel = try kernelMount(lowers: [fx.path("top"), fx.path("bot")])
        XCTAssertTreesEqual(snap, try TreeSnapshot.walk(kernel.mountPoint))
        kernel.stop()

        // Writes land in the upper: a new file, and a lower file copied up; the lowers stay as they were.
        try "new".write(toFile: mnt + "/d/new", atomically: false, encoding: .utf8)
        try "changed".write(toFile: mnt + "/b", atomically: false, encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: upper + "/d/new", encoding: .utf8), "new")
        XCTAssertEqual(try String(contentsOfFile: upper + "/b", encoding: .utf8), "changed")
        XCTAssertEqual(try String(contentsOfFile: fx.path("bot") + "/b", encoding: .utf8), "bottom")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fx.path("top") + "/d/new"))

        let u = try Run.program("/usr/bin/umount", [mnt], timeout: 10)
        XCTAssertEqual(u.status, 0, "umount failed: \(u.stderr)")
        XCTAssertTrue(MountTable.wait(for: mnt, mounted: false, timeout: 5), "still mounted after umount")
        XCTAssertTrue(waitForDaemonExit(mentioning: mnt), "the daemon should exit after the unmount")
    }
}
