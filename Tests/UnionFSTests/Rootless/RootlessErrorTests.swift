import Foundation
import Glibc
import XCTest

/// What a user without root is told when a mount cannot work, one line naming the problem and
/// its fix, nothing mounted. The machine's /dev/fuse, fusermount3 and /etc/fuse.conf are
/// replaced for one command only, inside a private mount namespace (`unshare -m` + bind mounts),
/// then the mount is tried as the plain user there.
final class RootlessErrorTests: TempDirTestCase {
    var user: RootlessUser!
    var dirs = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = try RootlessUser(subordinateIDs: false, for: self)
        chmod(tmp, 0o755)
        dirs = tmp + "/d"
        for sub in ["", "/L", "/U", "/W", "/M"] { try makeDir("d" + sub); user.own(dirs + sub) }
    }

    var mountCommand: String {
        "\"\(TestEnvironment.binary)\" -o lowerdir=\(dirs)/L,upperdir=\(dirs)/U,workdir=\(dirs)/W \(dirs)/M"
    }

    /// Runs `command` as the user inside a private mount namespace after `setup` (run as root).
    private func asUser(after setup: String, _ command: String) throws -> ProcessResult {
        let script = """
            set -e
            \(setup)
            exec runuser -u \(user.name) -- /bin/sh -c '\(command.replacingOccurrences(of: "'", with: "'\\''"))'
            """
        return try Run.program("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script], timeout: 30)
    }

    private func assertFails(_ r: ProcessResult, saying parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, "should fail: \(r.stdout)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "one line: \(r.stderr)", file: file, line: line)
        for p in parts { XCTAssertTrue(r.stderr.contains(p), "stderr lacks '\(p)': \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(MountTable.isMounted(dirs + "/M"), file: file, line: line)
    }

    func testDeviceNotAccessibleSaysHowToFix() throws {
        let node = tmp + "/fuse-0600"
        let r = try asUser(after: "mknod \(node) c 10 229; chmod 0600 \(node); mount --bind \(node) /dev/fuse", mountCommand)
        assertFails(r, saying: ["/dev/fuse is not readable and writable by uid \(user.uid)", "mode 0600", "chmod 0666 /dev/fuse"])
        XCTAssertFalse(r.stderr.contains("modprobe"), "the module is loaded: \(r.stderr)")
    }

    func testMissingDeviceSaysModuleOrDevice() throws {
        // An empty tmpfs over /dev: no /dev/fuse at all (as in a container without --device).
        let r = try asUser(after: "mount -t tmpfs none /dev; mknod -m 666 /dev/null c 1 3",
                           mountCommand)
        assertFails(r, saying: ["/dev/fuse does not exist", "modprobe fuse", "--device /dev/fuse"])
    }

    func testMissingFusermountIsNamed() throws {
        let r = try asUser(after: "mount --bind /dev/null /usr/bin/fusermount3", "PATH=/usr/bin:/bin " + mountCommand)
        assertFails(r, saying: ["fusermount3 not found", "install the fuse3 package"])
    }

    func testAllowOtherNeedsUserAllowOther() throws {
        let conf = tmp + "/fuse.conf"
        try "# no user_allow_other here\nmount_max = 1000\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let r = try asUser(after: "mount --bind \(conf) /etc/fuse.conf", mountCommand.replacingOccurrences(of: "-o ", with: "-o allow_other,"))
        assertFails(r, saying: ["allow_other", "user_allow_other", "/etc/fuse.conf"])
    }

    func testUnreadableLowerIsNamed() throws {
        let secret = try makeDir("secret")
        chmod(secret, 0o700)
        let r = try user.shell(mountCommand.replacingOccurrences(of: "lowerdir=\(dirs)/L", with: "lowerdir=\(secret)"))
        assertFails(r, saying: ["lowerdir '\(secret)'", "permission denied"])
        let noSearch = try makeDir("nosearch")
        chmod(noSearch, 0o744)
        let r2 = try user.shell(mountCommand.replacingOccurrences(of: "lowerdir=\(dirs)/L", with: "lowerdir=\(noSearch)"))
        assertFails(r2, saying: ["lowerdir '\(noSearch)'", "may not read and search it", "mode 0744"])
    }

    func testUnwritableUpperIsNamed() throws {
        let upper = try makeDir("root-upper")
        let r = try user.shell(mountCommand.replacingOccurrences(of: "upperdir=\(dirs)/U", with: "upperdir=\(upper)"))
        assertFails(r, saying: ["upperdir '\(upper)'", "uid \(user.uid) may not read, write and search it", "owner 0:0"])
    }
}
