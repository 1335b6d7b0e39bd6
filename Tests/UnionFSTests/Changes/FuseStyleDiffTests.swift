import Foundation
import UnionFS
import XCTest

/// Uppers as fuse-overlayfs writes them when it cannot make devices or trusted xattrs:
/// `.wh.NAME` files, `.wh..wh..opq` files (alone or next to an opaque xattr),
/// `user.fuseoverlayfs.opaque`; and as root: 0:0 devices with `user.overlay.opaque`.
final class ChangesFuseStyleTests: ChangesTestCase {
    func testWhiteoutFilesAndOpaqueMarkerFiles() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("mkdir d e; echo a > d/a; echo b > d/b; echo f > e/f; echo g > g", in: l)
        try sh("""
            mkdir d e; : > d/.wh.a; : > .wh.g; : > e/.wh..wh..opq; echo n > e/new
            python3 -c "import os; os.setxattr('e', 'user.fuseoverlayfs.opaque', b'y')"
            """, in: u)
        let expected = ["C /d", "D /d/a", "C /e", "D /e/f", "A /e/new", "D /g"]
        XCTAssertEqual(try upperDiff(lowers: [l], upper: u), expected)
        // The in-process view reads `.wh.` forms in lowers: stacking the upper as the top
        // lower gives the merged tree fuse-overlayfs shows.
        let old = try LayerStack(LayerStackConfiguration(lowerdirs: [l]))
        let new = try LayerStack(LayerStackConfiguration(lowerdirs: [u, l]))
        XCTAssertEqual(try TreeComparison.changes(from: MergedDirectory(root: old), to: MergedDirectory(root: new))
            .map(\.description), expected)
    }

    func testDevicesAndFuseOpaqueXattrAlone() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("mkdir d e x; echo a > d/a; echo f > e/f; echo y > x/y; echo k > x/keep", in: l)
        try sh("""
            mkdir d e x; mknod d/a c 0 0; mknod x/y c 0 0; mknod gone c 0 0
            python3 -c "import os; os.setxattr('d', 'user.fuseoverlayfs.opaque', b'y'); os.setxattr('e', 'user.overlay.opaque', b'y')"
            """, in: u)
        // `gone` hides nothing: no line. `e` is opaque through user.overlay.opaque.
        XCTAssertEqual(try upperDiff(lowers: [l], upper: u), ["C /d", "D /d/a", "C /e", "D /e/f", "C /x", "D /x/y"])
    }

    func testOpaqueValueOtherThanYIsNotOpaque() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("mkdir d; echo a > d/a", in: l)
        try sh("mkdir d; echo n > d/n; python3 -c \"import os; os.setxattr('d', 'trusted.overlay.opaque', b'yy')\"", in: u)
        XCTAssertEqual(try upperDiff(lowers: [l], upper: u), ["C /d", "A /d/n"])
    }

    func testKernelStrictReadsWhiteoutNamesAsPlainFiles() throws {
        let l = try dir("lower"), u = try dir("upper")
        try sh("echo f > foo", in: l)
        try sh(": > .wh.foo", in: u)
        XCTAssertEqual(try upperDiff(lowers: [l], upper: u), ["D /foo"])
        XCTAssertEqual(try upperDiff(lowers: [l], upper: u, format: .kernel(.trusted)), ["A /.wh.foo"])
        // And kernel overlayfs agrees with the strict reading (docs/SEMANTICS.md §6 case 20).
        let (merged, _) = try kernelMountOver(lower: l, upper: u)
        XCTAssertEqual(try treeDiff(lowers: [l], merged: merged), ["A /.wh.foo"])
    }

    /// A kernel mount over an existing upper.
    private func kernelMountOver(lower: String, upper: String) throws -> (String, String) {
        let work = try dir("w"), merged = try dir("m")
        guard mount("overlay", merged, "overlay", 0, "lowerdir=\(lower),upperdir=\(upper),workdir=\(work)") == 0 else {
            throw XCTSkip("kernel overlayfs mount failed")
        }
        addTeardownBlock { _ = umount2(merged, Int32(MNT_DETACH)) }
        return (merged, upper)
    }
}
