import Foundation
import Glibc
import XCTest

/// Issue 14: a user without root and without subordinate IDs loads an image of many owners
/// (the store keeps them in `user.containers.override_stat`), changes it through `image mount`
/// as root of its own user namespace, and commits and exports it. The new layer and the export
/// must carry the owners and modes root's store writes for the same steps: every tar header
/// (name, type, mode, owner, size, link target, xattrs) equal, times aside.
final class RootlessImageCommitTests: ImageTestCase {
    /// The same changes on both sides: new files, a chmod of a root-owned file and of a setuid
    /// one, an append, deletions (a file, a read-only tree), a directory with lower content
    /// (and a subdirectory of another owner) renamed, a symlink, a hard link, a FIFO, a
    /// directory in a sticky one. Files of owners the user's namespace does not map cannot be
    /// deleted or changed there (EOVERFLOW, as under rootless kernel overlayfs).
    static let changes = """
        set -e; umask 022
        echo new > newfile; mkdir -p newdir/sub; echo n > newdir/sub/f; chmod 0750 newdir
        chmod 0700 root-only; echo more >> root-only; chmod 0640 bin/setuid-copy
        rm etc/removeme; rm -rf ro-dir; mv srv srv-moved
        ln -s newfile newlink; ln newfile newhard; mkfifo newfifo; mkdir tmp/x
        """

    /// Every member of a tar as one line, times left out (python3's tarfile reads PAX xattrs).
    static let listing = """
        import sys, tarfile
        for m in tarfile.open(sys.argv[1]):
            x = sorted((k, v) for k, v in m.pax_headers.items() if k not in ("mtime", "atime", "ctime"))
            print(m.name, m.type, oct(m.mode), m.uid, m.gid, m.size, m.linkname, x)
        """

    func testRootlessCommitAndExportEqualRoots() throws {
        let user = try RootlessUser(subordinateIDs: false, for: self)
        let archive = try manyOwnerArchive()
        let bin = TestEnvironment.binary
        let changes = Self.changes.replacingOccurrences(of: "'", with: "'\\''")

        // Root: its store, a writable mount, the changes, commit, export.
        try imageOK(["load", archive])
        let rootUpper = try makeDir("root-upper")
        let mnt = try mountImage("localhost/owners:latest", ["--writable", "--upper", rootUpper])
        let r = try Run.program("/bin/sh", ["-c", "cd \"$0\" && " + Self.changes, mnt], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        unmount(mnt)
        let rootCommit = try imageOK(["commit", "--upper", rootUpper, "--from", "localhost/owners:latest",
                                      "--compress", "none", "--quiet", "localhost/owners:changed"])
        _ = try imageOK(["export", "localhost/owners:changed", tmp + "/root-export.tar"])

        // The user: its default store, the mount inside `unshare -Urm`, then commit and export.
        let data = user.home + "/data", home = user.home
        let userCommit = try user.ok("""
            set -e
            mkdir -p "\(home)/mnt" "\(home)/upper"
            "\(bin)" image load "\(archive)" >/dev/null
            unshare -Urm sh -ec '
                "\(bin)" image mount --writable --upper "\(home)/upper" localhost/owners:latest "\(home)/mnt"
                (cd "\(home)/mnt" && \(changes))
                umount "\(home)/mnt"'
            "\(bin)" image commit --upper "\(home)/upper" --from localhost/owners:latest --compress none --quiet localhost/owners:changed
            "\(bin)" image export localhost/owners:changed "\(home)/export.tar"
            """, timeout: 180, environment: ["XDG_DATA_HOME": data])

        func blob(_ commitOutput: String, store: String) throws -> String {
            let line = commitOutput.split(separator: "\n").first { $0.hasPrefix("digest sha256:") }
            let hex = try XCTUnwrap(line).dropFirst("digest sha256:".count)
            return store + "/blobs/sha256/" + hex
        }
        func members(_ tar: String) throws -> [String] {
            let l = try Run.program("/usr/bin/python3", ["-c", Self.listing, tar], timeout: 60)
            XCTAssertEqual(l.status, 0, l.stderr)
            return l.stdout.split(separator: "\n").map(String.init)
        }
        let rootLayer = try members(try blob(rootCommit, store: store))
        let userLayer = try members(try blob(userCommit, store: data + "/unionfs-swift"))
        XCTAssertGreaterThan(rootLayer.count, 10, rootLayer.joined(separator: "\n"))
        XCTAssertEqual(userLayer, rootLayer, "the rootless commit's layer differs from root's")
        for (name, fields) in [("srv-moved/app ", " 0o755 1234 2345 "), ("root-only ", " 0o700 0 0 "),
                               ("bin/setuid-copy ", " 0o640 0 0 "), ("newfile ", " 0o644 0 0 "),
                               ("newlink ", " 0o777 0 0 "), ("newfifo ", " 0o644 0 0 "), ("etc/.wh.removeme ", " b'0' 0o600 0 0 0 ")] {
            XCTAssertTrue(userLayer.contains { $0.hasPrefix(name) && $0.contains(fields) },
                          "no '\(name)' with '\(fields)' in the rootless layer:\n" + userLayer.joined(separator: "\n"))
        }
        XCTAssertFalse(userLayer.contains { $0.contains("override_stat") }, "the owner record leaked into the layer")

        let rootExport = try members(tmp + "/root-export.tar")
        let userExport = try members(home + "/export.tar")
        XCTAssertGreaterThan(rootExport.count, 20)
        // The one known difference: a symlink or FIFO cannot carry a user xattr, so the store
        // cannot record its owner; the user's export gives it to root (bin/sh is 7:7, fifo 5:6).
        let expected = rootExport.map { line in
            line.hasPrefix("bin/sh ") ? line.replacingOccurrences(of: " 7 7 ", with: " 0 0 ")
                : line.hasPrefix("fifo ") ? line.replacingOccurrences(of: " 5 6 ", with: " 0 0 ") : line
        }
        XCTAssertNotEqual(expected, rootExport, "the fixture lost its symlink or FIFO of other owners")
        XCTAssertEqual(userExport, expected, "the rootless export differs from root's")
    }
}
