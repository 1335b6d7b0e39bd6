import Foundation
import Glibc
import XCTest

/// unionfs-swift and kernel overlayfs over identical layers must show identical trees: names,
/// types, sizes, modes, owners, symlink targets, contents and user xattrs.
final class KernelDifferentialTests: MountTestCase {
    /// Three layers with every kernel on-disk form: whiteouts, opaque dirs ("y", "yy", "x"),
    /// file over dir, dir over file, symlinks, special modes, owners, user xattrs, a large file.
    func testMixedFixtureMatchesKernel() throws {
        let top = try fx.layer("top"), mid = try fx.layer("mid"), bot = try fx.layer("bot")
        try top.dir("", mode: 0o755, xattrs: ["user.root": "top"])
            .file("a", "top-a", mode: 0o600, uid: 1000, gid: 1000, xattrs: ["user.k": "v", "user.empty": ""])
            .dir("merged", mode: 0o750, uid: 12, gid: 34, xattrs: ["user.dir": "top"])
            .file("merged/t", "t").file("merged/shadow", "top-shadow")
            .file("fileOverDir", "now a file", mode: 0o4755)
            .dir("dirOverFile").file("dirOverFile/inner", "inner")
            .symlink("abs", to: "/nonexistent/target", uid: 7, gid: 8)
            .symlink("rel", to: "merged/t").symlink("loop", to: "loop")
            .dir("sticky", mode: 0o1777).dir("setgid", mode: 0o2775, gid: 100)
            .fileBytes("big", (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
            .file("exec", "#!/bin/sh\n", mode: 0o755)
            .file("noperm", "secret", mode: 0o000)
        try mid.file("a", "mid-a").dir("merged", mode: 0o700).file("merged/m", "m", xattrs: ["user.mid": "1"])
            .file("merged/shadow", "mid-shadow").whiteout("merged/gone").whiteout("topgone")
            .dir("opq", opaque: "y").file("opq/mine", "mine")
            .dir("notopq", opaque: "yy").file("notopq/mine", "mine")
            .dir("xopq", opaque: "x").file("xopq/mine", "mine")
            .file("dirOverFile", "a file under a dir")
            .whiteout("wdir")
        try bot.file("merged/b", "b").file("merged/gone", "gone").file("topgone", "tg")
            .dir("fileOverDir").file("fileOverDir/hidden", "hidden")
            .file("dirOverFile/below", "below the file: hidden")
            .file("opq/hidden", "hidden").file("notopq/shown", "shown").file("xopq/shown", "shown")
            .dir("wdir").file("wdir/x", "x")
            .file("bottom-only", "bottom", mode: 0o640, uid: 4242, gid: 4343, xattrs: ["user.bot": "b"])
            .dir("deepbot/a/b").file("deepbot/a/b/c", "c")
        let snap = try assertMatchesKernel(["top", "mid", "bot"], minimumPaths: 30)
        // Spot checks so that a tree walk that is wrong on both sides cannot pass.
        XCTAssertNil(snap.entries["merged/gone"])
        XCTAssertNil(snap.entries["opq/hidden"])
        XCTAssertNotNil(snap.entries["notopq/shown"])
        XCTAssertNil(snap.entries["fileOverDir/hidden"])
        XCTAssertEqual(snap.entries["a"]?.uid, 1000)
        XCTAssertEqual(snap.entries["a"]?.xattrs["user.k"], Array("v".utf8))
        XCTAssertEqual(snap.entries["merged"]?.mode, 0o750)
        XCTAssertEqual(snap.entries["big"]?.size, 1 << 20)
    }

    /// One directory with 5,000 entries spread over three layers, with whiteouts and shadowing.
    func testFiveThousandEntryDirectoryMatchesKernel() throws {
        let top = try fx.layer("top"), mid = try fx.layer("mid"), bot = try fx.layer("bot")
        for l in [top, mid, bot] { try l.dir("big") }
        for i in 0..<5000 {
            let name = "big/entry-\(i)"
            switch i % 6 {
            case 0: try top.file(name, "t\(i)")
            case 1: try mid.file(name, "m\(i)", mode: 0o600)
            case 2: try bot.symlink(name, to: "entry-\(i - 1)")
            case 3: try top.file(name, "t\(i)"); try bot.file(name, "shadowed")
            case 4: try mid.dir(name)
            default: try bot.file(name, "b\(i)")
            }
        }
        for i in stride(from: 5, to: 5000, by: 60) { try mid.whiteout("big/entry-\(i)") }
        let snap = try assertMatchesKernel(["top", "mid", "bot"], minimumPaths: 4900)
        XCTAssertNil(snap.entries["big/entry-5"])
        XCTAssertNotNil(snap.entries["big/entry-11"])
    }

    /// A tree 40 directories deep, each level merged from all three layers.
    func testDeepTreeMatchesKernel() throws {
        let layers = [try fx.layer("top"), try fx.layer("mid"), try fx.layer("bot")]
        var path = ""
        for depth in 0..<40 {
            path += (path.isEmpty ? "" : "/") + "level\(depth)"
            let l = layers[depth % 3]
            try l.file(path + "/file-\(depth)", "depth \(depth)", mode: 0o644, uid: UInt32(depth))
            try layers[(depth + 1) % 3].dir(path, mode: depth == 39 ? 0o711 : 0o755)
            if depth % 7 == 0 { try layers[2].file(path + "/bottom-\(depth)", "b") }
            if depth % 14 == 0 { try layers[0].whiteout(path + "/bottom-\(depth)") }
        }
        let snap = try assertMatchesKernel(["top", "mid", "bot"], minimumPaths: 80)
        XCTAssertNil(snap.entries["level0/bottom-0"])
        XCTAssertNotNil(snap.entries[path.split(separator: "/").prefix(8).joined(separator: "/") + "/bottom-7"])
        XCTAssertEqual(snap.entries[path + "/file-39"]?.uid, 39)
    }

    /// Xattr whiteouts in a subdirectory marked "x": lookup and readdir hide them like the kernel.
    func testXattrWhiteoutsMatchKernel() throws {
        try fx.layer("top").dir("d", opaque: "x").xattrWhiteout("d/w").file("d/a", "a")
            .dir("plain").file("plain/p", "p")
        try fx.layer("bot").file("d/w", "w").file("d/b", "b").file("plain/q", "q")
        let snap = try assertMatchesKernel(["top", "bot"], minimumPaths: 6)
        XCTAssertNil(snap.entries["d/w"])
        XCTAssertNotNil(snap.entries["d/b"])
    }

    /// Xattr whiteouts at a layer root marked "x": the kernel hides them from readdir of the root.
    func testXattrWhiteoutsAtLayerRootMatchKernel() throws {
        try fx.layer("top").dir("", opaque: "x").xattrWhiteout("w").file("a", "a")
        try fx.layer("bot").file("w", "w").file("b", "b")
        let snap = try assertMatchesKernel(["top", "bot"], minimumPaths: 3)
        XCTAssertNil(snap.entries["w"])
    }

    /// With `no_oci_whiteouts`, `.wh.NAME` and `.wh..wh..opq` are plain files, as the kernel shows them.
    func testNoOCIWhiteoutsOptionMatchesKernel() throws {
        try fx.layer("top").ociWhiteout("foo").ociOpaque("d").file("d/a", "a")
        try fx.layer("bot").file("foo", "foo").file("d/b", "b")
        let snap = try assertMatchesKernel(["top", "bot"], extraOptions: ",no_oci_whiteouts", minimumPaths: 6)
        XCTAssertNotNil(snap.entries[".wh.foo"])
        XCTAssertNotNil(snap.entries["d/b"])
    }

    /// OCI form read by unionfs-swift equals the kernel reading the same layers in native form.
    func testOCIFormMatchesKernelOverNativeForm() throws {
        func build(_ prefix: String, oci: Bool) throws {
            let top = try fx.layer(prefix + "top"), bot = try fx.layer(prefix + "bot")
            try top.file("keep", "k").file("d/new", "n").file("sub/x", "x")
            if oci {
                try top.ociWhiteout("gone").ociOpaque("d").ociWhiteout("sub/y")
            } else {
                try top.whiteout("gone").dir("d", opaque: "y").whiteout("sub/y")
            }
            try bot.file("gone", "g").file("d/old", "o").file("sub/y", "y").file("sub/z", "z").file("b", "b")
        }
        try build("oci-", oci: true)
        try build("native-", oci: false)
        let fuse = try fuseMount(lowerdirOption(["oci-top", "oci-bot"]))
        let mine = try TreeSnapshot.walk(fuse.mountPoint)
        // The markers are not part of the merged tree: lookup by name must not find them either.
        for marker in [".wh.gone", "d/.wh..wh..opq", "sub/.wh.y"] {
            var st = stat()
            let rc = lstat(fuse.mountPoint + "/" + marker, &st)
            let e = errno
            XCTAssertTrue(rc == -1 && e == ENOENT, "lstat /\(marker) on the mount should be ENOENT (rc \(rc))")
        }
        fuse.stop()
        let kernel = try kernelMount(lowers: [fx.path("native-top"), fx.path("native-bot")])
        let reference = try TreeSnapshot.walk(kernel.mountPoint)
        kernel.stop()
        XCTAssertEqual(Set(reference.entries.keys), ["", "keep", "d", "d/new", "sub", "sub/x", "sub/z", "b"])
        // The OCI marker files make the layer dirs differ in size on disk; everything else must match.
        XCTAssertTreesEqual(mine, reference, ignoringDirectorySize: true)
    }

    /// A mount with an upper (read side): upper whiteouts and opaque dirs, compared to the kernel.
    func testUpperAndLowersMatchKernel() throws {
        try fx.layer("upper").file("u", "u").whiteout("gone").dir("opq", opaque: "y").file("opq/u", "u")
            .file("merged/u", "u").file(".wh.plain", "plain in upper")
        try fx.layer("lower").file("gone", "g").file("opq/l", "l").file("merged/l", "l").file("plain", "p")
        let fuseWork = try makeDir("fuse-work"), kernelWork = try makeDir("kernel-work")
        let fuse = try fuseMount(lowerdirOption(["lower"]) + ",upperdir=\(fx.path("upper")),workdir=\(fuseWork)")
        let mine = try TreeSnapshot.walk(fuse.mountPoint)
        fuse.stop()
        let kernel = try kernelMount(lowers: [fx.path("lower")], upper: fx.path("upper"), work: kernelWork)
        let reference = try TreeSnapshot.walk(kernel.mountPoint)
        kernel.stop()
        XCTAssertEqual(Set(reference.entries.keys),
                       ["", "u", "opq", "opq/u", "merged", "merged/u", "merged/l", ".wh.plain", "plain"])
        XCTAssertTreesEqual(mine, reference)
    }
}
