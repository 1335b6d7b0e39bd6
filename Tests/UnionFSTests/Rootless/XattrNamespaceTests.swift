import CAttr
import Foundation
import Glibc
import XCTest

/// Lowers are read in both xattr namespaces: layers written by rootless kernel overlayfs
/// (`user.overlay.*`, podman's native rootless driver) merge under root's mount, and layers
/// written by root (`trusted.overlay.*`) merge under a mount forced to `user`. The kernel, told
/// the matching namespace, is the reference. Markers go to the chosen namespace.
final class XattrNamespaceTests: MountTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("trusted xattrs and kernel overlayfs need root") }
    }

    /// Two lowers: the top one marks `opq` opaque and whites out `gone` with an xattr whiteout
    /// (its root marked "x", as the kernel requires), in namespace `ns`.
    private func layers(_ ns: String, prefix: String) throws -> [String] {
        try fx.layer(prefix + "top").file("opq/top", "top").file("kept", "top-kept")
        try fx.layer(prefix + "base").file("opq/hidden", "hidden").file("gone", "gone").file("kept", "base")
            .file("dir/f", "f")
        let top = fx.path(prefix + "top")
        try fx.layer(prefix + "top").file("gone", "")
        for (path, name, value) in [(top + "/opq", "opaque", "y"), (top, "opaque", "x"), (top + "/gone", "whiteout", "y")] {
            XCTAssertEqual(lsetxattr(path, "\(ns).overlay.\(name)", value, value.utf8.count, 0), 0, path)
        }
        return [top, fx.path(prefix + "base")]
    }

    private func kernel(_ lowers: [String], userxattr: Bool, name: String) throws -> String {
        let mnt = try makeDir(name)
        let data = (userxattr ? "userxattr," : "") + "lowerdir=" + lowers.joined(separator: ":")
        guard Glibc.mount("overlay", mnt, "overlay", 0, data) == 0 else {
            throw XCTSkip("kernel overlayfs refused \(data): \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(mnt) }
        return mnt
    }

    func testRootReadsRootlessLayers() throws {
        let lowers = try layers("user", prefix: "rl-")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let ours = try fuseMount("lowerdir=\(lowers.joined(separator: ":")),upperdir=\(upper),workdir=\(work)")
        let reference = try kernel(lowers, userxattr: true, name: "kernel")
        let mine = try TreeSnapshot.walk(ours.mountPoint)
        XCTAssertTreesEqual(mine, try TreeSnapshot.walk(reference), ignoringDirectorySize: true, "user.overlay.* lowers under root")
        XCTAssertNil(mine.entries["gone"]); XCTAssertNil(mine.entries["opq/hidden"]); XCTAssertNotNil(mine.entries["opq/top"])
        // Root writes the kernel's default namespace.
        try FileManager.default.removeItem(atPath: ours.mountPoint + "/dir")
        XCTAssertEqual(Glibc.mkdir(ours.mountPoint + "/dir", 0o755), 0)
        XCTAssertEqual(lgetxattr(upper + "/dir", "trusted.overlay.opaque", nil, 0), 1, "root marks in trusted.overlay.*")
        XCTAssertEqual(lgetxattr(upper + "/dir", "user.overlay.opaque", nil, 0), -1)
    }

    func testForcedUserReadsRootLayers() throws {
        let lowers = try layers("trusted", prefix: "tr-")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let ours = try fuseMount("lowerdir=\(lowers.joined(separator: ":")),upperdir=\(upper),workdir=\(work),xattr_namespace=user")
        let reference = try kernel(lowers, userxattr: false, name: "kernel")
        XCTAssertTreesEqual(try TreeSnapshot.walk(ours.mountPoint), try TreeSnapshot.walk(reference),
                            ignoringDirectorySize: true, "trusted.overlay.* lowers under xattr_namespace=user")
        try FileManager.default.removeItem(atPath: ours.mountPoint + "/dir")
        XCTAssertEqual(Glibc.mkdir(ours.mountPoint + "/dir", 0o755), 0)
        XCTAssertEqual(lgetxattr(upper + "/dir", "user.overlay.opaque", nil, 0), 1, "forced user marks in user.overlay.*")
        XCTAssertEqual(lgetxattr(upper + "/dir", "trusted.overlay.opaque", nil, 0), -1)
    }
}
