import Foundation
import Glibc
import XCTest

/// POSIX ACLs through the mount, side by side with kernel overlayfs on the same layers: the
/// kernel checks them (FUSE_POSIX_ACL), an ACL set through the mount takes effect, entries made
/// under a directory with a default ACL inherit it with the umask ignored (DONT_MASK), also when
/// built in the workdir (over a whiteout, an opaque new directory), and setting an ACL clears
/// setgid as the kernel does for a caller outside the file's group, and a default ACL set on a
/// directory counts for the next entry made in it. `noacl` turns all of it off.
final class ACLTests: MountTestCase {
    /// Writes ACL xattrs in the kernel's binary form (no `acl` package on the test machines).
    private let aclTool = """
    import os, struct, sys
    U = 0xffffffff
    def acl(entries): return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "deny-nobody":    # user:nobody:--- on a 0644 file
        os.setxattr(path, "system.posix_acl_access", acl([(1, 6, U), (2, 0, 65534), (4, 4, U), (0x10, 4, U), (0x20, 4, U)]))
    elif kind == "grant-nobody":  # user:nobody:r-- on a 0600 file
        os.setxattr(path, "system.posix_acl_access", acl([(1, 6, U), (2, 4, 65534), (4, 0, U), (0x10, 4, U), (0x20, 0, U)]))
    elif kind == "default":      # default user:nobody:rwx
        os.setxattr(path, "system.posix_acl_default", acl([(1, 7, U), (2, 7, 65534), (4, 5, U), (0x10, 7, U), (0x20, 5, U)]))
    else:
        try: print(os.getxattr(path, "system.posix_acl_access").hex())
        except OSError as e: print("errno", e.errno)
    """

    /// The layers "low" (top) and "low2": a file whose ACL denies nobody, one that nobody may
    /// not read, a directory with a default ACL merged over "low2" with a file to delete, and a
    /// setgid file of nobody's in root's group.
    private func makeLayers(_ prefix: String, tool: String) throws -> [String] {
        let low = try fx.layer(prefix + "low"), low2 = try fx.layer(prefix + "low2")
        try low.file("deny", "secret\n", mode: 0o644).file("plain", "plain\n", mode: 0o600)
            .dir("dd").file("sg", "g\n", mode: 0o2664, uid: 65534, gid: 0)
        try low2.dir("dd").file("dd/wh", "w\n")
        for (kind, path) in [("deny-nobody", low.abs("deny")), ("default", low.abs("dd"))] {
            let r = try Run.program("/usr/bin/python3", [tool, kind, path])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        return [fx.path(prefix + "low"), fx.path(prefix + "low2")]
    }

    /// What the script sees through mount point `$M`.
    private func observe(_ mountPoint: String, tool: String) throws -> String {
        let script = """
        M='\(mountPoint)'; T='\(tool)'
        nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
        echo "deny: $(nobody cat "$M/deny" 2>&1 | sed 's|.*: ||')"
        /usr/bin/python3 "$T" grant-nobody "$M/plain"
        echo "granted: $(nobody cat "$M/plain" 2>&1 | sed 's|.*: ||')"
        rm "$M/dd/wh"
        (umask 022; : > "$M/dd/newf"; mkdir "$M/dd/newd" "$M/dd/wh"; mkfifo "$M/dd/fifo"; : > "$M/newf"; mkdir "$M/newd")
        (umask 022; mkdir "$M/nd"; : > "$M/nd/before"; /usr/bin/python3 "$T" default "$M/nd"; : > "$M/nd/after")
        for f in dd/newf dd/newd dd/wh dd/fifo newf newd nd/before nd/after; do echo "$f $(stat -c %a "$M/$f") $(/usr/bin/python3 "$T" get "$M/$f")"; done
        nobody /usr/bin/python3 "$T" grant-nobody "$M/sg" 2>&1 | tail -1
        echo "sg $(stat -c %a "$M/sg")"
        """
        let r = try Run.program("/bin/sh", ["-c", script], timeout: 30)
        XCTAssertFalse(r.timedOut)
        return r.stdout + r.stderr
    }

    private func writeTool() throws -> String {
        let tool = tmp + "/acl.py"
        try aclTool.write(toFile: tool, atomically: true, encoding: .utf8)
        return tool
    }

    func testACLsAsKernelOverlayfs() throws {
        let tool = try writeTool()
        let kernelLowers = try makeLayers("k-", tool: tool)
        let kernel = try kernelMount(lowers: kernelLowers, upper: try makeDir("k-upper"), work: try makeDir("k-work"))
        let expected = try observe(kernel.mountPoint, tool: tool)
        kernel.stop()
        _ = try makeLayers("f-", tool: tool)
        let m = try fuseMount(lowerdirOption(["f-low", "f-low2"]) + ",upperdir=\(try makeDir("f-upper")),workdir=\(try makeDir("f-work"))")
        let mine = try observe(m.mountPoint, tool: tool)
        XCTAssertTrue(expected.contains("deny: Permission denied"), expected)
        XCTAssertTrue(expected.contains("granted: plain"), expected)
        XCTAssertTrue(expected.contains("dd/newd 775 02000000"), "the default ACL inherited: \(expected)")
        XCTAssertTrue(expected.contains("sg 640"), "setgid cleared by an ACL set outside the group: \(expected)")
        // The daemon remembers that "nd" had no default ACL; setting one must end that.
        XCTAssertTrue(expected.contains("nd/before 644") && expected.contains("nd/after 664"), expected)
        XCTAssertEqual(mine, expected)
    }

    /// `noacl` (fuse-overlayfs's option): ACL xattrs refused, permissions from the mode bits.
    func testNoACL() throws {
        let tool = try writeTool()
        _ = try makeLayers("", tool: tool)
        let m = try fuseMount(lowerdirOption(["low", "low2"]) + ",upperdir=\(try makeDir("upper")),workdir=\(try makeDir("work")),noacl")
        let seen = try observe(m.mountPoint, tool: tool)
        XCTAssertTrue(seen.contains("deny: secret"), "the ACL is not checked: \(seen)")
        XCTAssertTrue(seen.contains("dd/newf 644 errno 95"), "no ACLs, the umask applied: \(seen)")
        XCTAssertTrue(seen.contains("sg 2664"), "no ACL set, setgid kept: \(seen)")
    }
}
