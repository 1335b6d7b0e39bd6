import Foundation
import Glibc
import XCTest

/// The contract containers/storage relies on when `unionfs-swift` is its overlay
/// `mount_program`: it runs `PROG -o OPTS MERGED` (no -f) and waits; exit 0 means the mount is
/// ready (the daemon carries on detached), anything else is a failure whose reason is on stderr.
/// OPTS is what podman 4 actually sends (seen with a logging wrapper): an empty item before
/// `volatile`, and its optional additions.
final class MountProgramTests: MountTestCase {
    /// Daemons started by the program under test, found by our unique temp path.
    private func daemons() -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return items.compactMap { item -> pid_t? in
            guard let pid = pid_t(item), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(item)/cmdline") else { return nil }
            return String(decoding: data, as: UTF8.self).contains(tmp) ? pid : nil
        }
    }

    /// Runs the program as containers/storage does, for a container with `extra` appended.
    private func mountAsStorage(_ extra: String, file: StaticString = #filePath, line: UInt = #line) throws -> (String, ProcessResult) {
        // Layers as containers/storage writes them with a mount program: `.wh.NAME` files.
        try fx.layer("image").file("etc/issue", "lower\n").ociWhiteout("hidden-by-oci").ociOpaque("usr/share/doc")
            .file("usr/share/doc/new", "new")
        try fx.layer("base").file("hidden-by-oci", "must not show").file("usr/share/doc/pkg/README", "doc")
        let upper = try makeDir("c/diff"), work = try makeDir("c/work"), merged = try makeDir("c/merged")
        addCleanup { [self] in
            MountTable.forceUnmount(merged)
            let deadline = Date().addingTimeInterval(5)
            while !daemons().isEmpty && Date() < deadline { usleep(20_000) }
            for pid in daemons() { kill(pid, SIGKILL) }
        }
        let opts = "lowerdir=\(fx.path("image")):\(fx.path("base")),upperdir=\(upper),workdir=\(work),,volatile" + extra
        let r = try Run.program(TestEnvironment.binary, ["-o", opts, merged], timeout: 15)
        return (merged, r)
    }

    func testReadyOnExitAndCleanUnmount() throws {
        let (merged, r) = try mountAsStorage(",nodev,nosuid,private,xattr_permissions=2")
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        // No polling: the mount must already be there when the program has exited.
        XCTAssertTrue(MountTable.isMounted(merged, fsTypePrefix: "fuse.unionfs-swift"), "not mounted on exit 0")
        XCTAssertTrue(MountTable.mounts(at: merged).last?.options.contains("nosuid") ?? false,
                      "nosuid should reach the kernel: \(MountTable.mounts(at: merged).map(\.options))")
        XCTAssertEqual(try String(contentsOfFile: merged + "/etc/issue", encoding: .utf8), "lower\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged + "/hidden-by-oci"), ".wh.NAME must hide NAME")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: merged + "/usr/share/doc"), ["new"],
                       ".wh..wh..opq must stop the merge")
        try "container\n".write(toFile: merged + "/etc/issue", atomically: false, encoding: .utf8)
        XCTAssertEqual(daemons().count, 1, "one detached daemon")
        let u = try Run.program("/usr/bin/fusermount3", ["-u", merged], timeout: 10)
        XCTAssertEqual(u.status, 0, u.stderr)
        XCTAssertFalse(MountTable.isMounted(merged))
        let deadline = Date().addingTimeInterval(5)
        while !daemons().isEmpty && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(daemons().isEmpty, "the daemon should exit after the unmount")
        XCTAssertEqual(try String(contentsOfFile: tmp + "/c/diff/etc/issue", encoding: .utf8), "container\n")
    }

    /// podman passes an SELinux `context="…"` (commas inside quotes) when SELinux is on; without
    /// SELinux the kernel would refuse it, so the mount must still succeed.
    func testSELinuxContextIsAccepted() throws {
        let (merged, r) = try mountAsStorage(#",context="system_u:object_r:container_file_t:s0:c1,c2""#)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(MountTable.isMounted(merged, fsTypePrefix: "fuse"), "context= broke the mount: \(r.stderr)")
    }

    func testIDMappingOptionsMount() throws {
        // Exactly as containers/storage writes it for `podman run --uidmap`: a colon before each triple.
        let (merged, r) = try mountAsStorage(",uidmapping=:0:100000:65536,gidmapping=:0:100000:65536")
        XCTAssertEqual(r.status, 0, r.stderr)
        var st = stat()
        XCTAssertEqual(lstat(merged + "/etc/issue", &st), 0)
        // fuse-overlayfs's meaning: disk ids 0... show as 100000... (and are stored back).
        XCTAssertEqual(st.st_uid, 100000)
        XCTAssertEqual(st.st_gid, 100000)
    }

    /// An option neither podman nor fuse-overlayfs knows: non-zero, the option named on stderr,
    /// nothing mounted, no daemon left.
    func testUnknownOptionFailsWithItsName() throws {
        let (merged, r) = try mountAsStorage(",metacopy=on")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("metacopy=on"), "stderr should name the option: \(r.stderr)")
        XCTAssertFalse(MountTable.isMounted(merged))
        XCTAssertTrue(daemons().isEmpty)
    }
}
