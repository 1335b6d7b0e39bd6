import Foundation
import Glibc
import XCTest

/// A plain user (no root, no namespace) mounts through fusermount3 and takes every write path;
/// the upper it leaves must show the same tree under the kernel's rootless overlayfs
/// (`userxattr`, mounted by the same user inside `unshare -Urm`).
final class PlainUserMountTests: TempDirTestCase {
    var user: RootlessUser!

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = try RootlessUser(subordinateIDs: false, for: self)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/fusermount3") else { throw XCTSkip("no fusermount3") }
        // The user's own directory under the test's: the user must be able to reach it.
        chmod(tmp, 0o755)
    }

    /// Lowers made by the user (the second one marks `dir` opaque the rootless way), then every
    /// write path through our mount: mkdir over nothing and over a whiteout, rmdir of a merged
    /// dir, rename of a dir with lower content, opaque dirs, copy-up of xattrs, hard links, a
    /// FIFO; then the rootless kernel mount of the same upper.
    static let writes = """
        mkdir new-dir; echo n > new-dir/f
        rm -rf merged; mkdir merged; echo again > merged/again
        rm -rf gone; rmdir emptied 2>/dev/null || { rm -rf emptied/*; rmdir emptied; }
        mv moved moved2; echo more >> moved2/a
        setfattr -n user.copied -v yes keep; setfattr -n user.top -v t .
        ln keep keep.hard; ln moved2/a a.hard
        mkfifo fifo; ln -s keep sym; chmod 600 keep
        rm hidden-by-user-whiteout 2>/dev/null || true
        """

    func testWritePathsAsPlainUserRemountUnderRootlessKernel() throws {
        let started = Date()
        let d = tmp + "/u"
        try makeDir("u"); user.own(d)
        let out = try user.ok("""
            set -e
            \(UserNamespaceWriteTests.snapshotFunction)
            cd "\(d)"
            mkdir -p L1 L0 U W M K KW
            mkdir -p L1/merged/sub L1/gone L1/emptied L1/moved/deep L1/opq
            echo a > L1/merged/sub/a; echo g > L1/gone/g; echo e > L1/emptied/e; echo a > L1/moved/a; echo d > L1/moved/deep/d
            echo k > L1/keep; setfattr -n user.low -v 1 L1/keep; echo o > L1/opq/hidden; echo h > L1/hidden-by-user-whiteout
            mkdir -p L0/opq; echo top > L0/opq/top; setfattr -n user.overlay.opaque -v y L0/opq
            touch L0/hidden-by-user-whiteout; setfattr -n user.overlay.whiteout -v y L0/hidden-by-user-whiteout
            setfattr -n user.overlay.opaque -v x L0
            "\(TestEnvironment.binary)" -o lowerdir=L0:L1,upperdir=U,workdir=W M
            grep " $(pwd)/M " /proc/mounts | cut -d' ' -f3
            ls M/opq; test ! -e M/hidden-by-user-whiteout && echo user-whiteout-hides
            (cd M && sh -ec '\(Self.writes)')
            snap M > mine
            fusermount3 -u M
            getfattr -h -n user.overlay.opaque --only-values U/merged; echo
            test -c U/gone && echo whiteout-device
            unshare -Urm sh -ec 'mount -t overlay overlay -o userxattr,lowerdir=U:L0:L1 K; \(Self.snapshotSh("K")) > kernel; umount K'
            """, timeout: 60)
        XCTAssertTrue(out.hasPrefix("fuse.unionfs-swift\ntop\nuser-whiteout-hides\ny\nwhiteout-device\n"), out)
        let mine = try String(contentsOfFile: d + "/mine", encoding: .utf8)
        let kernel = try String(contentsOfFile: d + "/kernel", encoding: .utf8)
        // Owners differ only by the namespace's view (the user is root inside `unshare -Ur`).
        let shown = mine.replacingOccurrences(of: " \(user.uid):\(user.gid)", with: " 0:0")
        XCTAssertEqual(shown, kernel, "our upper under rootless kernel overlayfs")
        for line in ["./new-dir/f f 644", "./merged/again f", "./moved2/deep/d f", "./keep f 600", "./fifo p", "./keep.hard f 600 0:0 2 2"] {
            XCTAssertTrue(shown.contains(line), "missing '\(line)' in\n\(shown)")
        }
        XCTAssertTrue(shown.contains("user.copied=\"yes\"") && shown.contains("user.low=\"1\""), shown)
        XCTAssertFalse(shown.contains("./gone") || shown.contains("./emptied") || shown.contains("./opq/hidden")
                       || shown.contains("user.overlay"), shown)
        print("PlainUserMountTests: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    /// `passthrough=auto` (the default) is silently off for a plain user (registering backing
    /// files needs CAP_SYS_ADMIN): the mount works as before, reads come to the daemon (those
    /// of a file too large to be stored in the page cache at its open, `StoreAtOpenTests`), and
    /// `passthrough=on` refuses to mount with the reason.
    func testPassthroughAutoIsSilentlyOffForAPlainUser() throws {
        let d = tmp + "/p"
        try makeDir("p"); user.own(d)
        let out = try user.ok("""
            set -e
            cd "\(d)"
            mkdir -p L U W M; echo data > L/f; head -c 200000 /dev/zero > L/big
            "\(TestEnvironment.binary)" -o lowerdir=L,upperdir=U,workdir=W M
            cat M/f; echo x >> M/f; cat M/f; cat M/big > /dev/null
            "\(TestEnvironment.binary)" stats M | awk '/^READ /{print "READ", $2} /^passthrough opens/{print "passthrough opens:", $3}'
            fusermount3 -u M
            "\(TestEnvironment.binary)" -o lowerdir=L,passthrough=on M 2>&1 || true
            """, timeout: 60)
        XCTAssertTrue(out.hasPrefix("data\ndata\nx\nREAD "), out)
        XCTAssertTrue(out.contains("passthrough opens: 0\n"), out)
        XCTAssertTrue(out.contains("passthrough=on cannot be honoured") && out.contains("CAP_SYS_ADMIN"), out)
    }

    /// The snapshot function's body for one directory, for an inline `sh -c`.
    static func snapshotSh(_ dir: String) -> String {
        UserNamespaceWriteTests.snapshotFunction.replacingOccurrences(of: "'", with: "'\\''") + "; snap \(dir)"
    }

    /// `-d` says which namespace the markers go to and why; the option forces either way.
    func testDebugLogNamesTheXattrNamespace() throws {
        let d = tmp + "/log"
        try makeDir("log/L"); try makeDir("log/U"); try makeDir("log/W")
        for p in [d, d + "/L", d + "/U", d + "/W"] { user.own(p) }
        // A mountpoint that does not exist: the choice is logged, then the mount fails.
        let plain = try user.shell("\"\(TestEnvironment.binary)\" -d -o lowerdir=\(d)/L,upperdir=\(d)/U,workdir=\(d)/W \(d)/none")
        XCTAssertTrue(plain.stderr.contains("overlay xattrs in user.overlay.* (chosen: without CAP_SYS_ADMIN)"), plain.stderr)
        let forced = try user.shell("\"\(TestEnvironment.binary)\" -d -o xattr_namespace=trusted,lowerdir=\(d)/L,upperdir=\(d)/U,workdir=\(d)/W \(d)/none")
        XCTAssertTrue(forced.stderr.contains("overlay xattrs in trusted.overlay.* (given by an option)"), forced.stderr)
        // Root's own directories for root and for root of a user namespace (which maps only 0).
        for sub in ["L", "U", "W"] { chown(d + "/" + sub, 0, 0) }
        try FileManager.default.removeItem(atPath: d + "/W/work")
        let root = try Run.program(TestEnvironment.binary, ["-d", "-o", "lowerdir=\(d)/L,upperdir=\(d)/U,workdir=\(d)/W", d + "/none"])
        XCTAssertTrue(root.stderr.contains("overlay xattrs in trusted.overlay.* (chosen: CAP_SYS_ADMIN in the initial user namespace)"),
                      root.stderr)
        let ns = try Run.program("/usr/bin/unshare", ["-Urm", TestEnvironment.binary, "-d", "-o",
                                                      "lowerdir=\(d)/L,upperdir=\(d)/U,workdir=\(d)/W", d + "/none"])
        XCTAssertTrue(ns.stderr.contains("overlay xattrs in user.overlay.* (chosen: inside a user namespace)"), ns.stderr)
    }
}
