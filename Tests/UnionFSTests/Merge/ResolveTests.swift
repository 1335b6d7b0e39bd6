import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Lookup rules of docs/SEMANTICS.md §2 and the read-side edge cases of §6, through `UnionView`.
final class ResolveTests: ViewTestCase {
    /// §6.9 with lowers only: a whiteout in the middle layer hides the bottom one; the same name
    /// in the top layer is still visible.
    func testWhiteoutInMiddleHidesBottomButNotTop() throws {
        try fx.layer("top").file("shown", "top")
        try fx.layer("mid").whiteout("shown").whiteout("gone")
        try fx.layer("bot").file("shown", "bottom").file("gone", "bottom").file("kept", "bottom")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(try text(v, "shown"), "top")
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("gone") }
        XCTAssertEqual(try text(v, "kept"), "bottom")
        XCTAssertEqual(names(v, ""), ["kept", "shown"])
    }

    /// §6.9 with an upper: upper file, whiteout in the middle (lower 1), file at the bottom.
    func testWhiteoutInMiddleWithUpperAbove() throws {
        try fx.layer("upper").file("f", "upper").dir("d").file("d/x", "upper-x")
        try fx.layer("l1").whiteout("f").whiteout("d").whiteout("g")
        try fx.layer("l2").file("f", "bottom").dir("d").file("d/y", "bottom-y").file("g", "bottom")
        let v = try view(["l1", "l2"], upper: "upper")
        XCTAssertEqual(try text(v, "f"), "upper")
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("g") }
        // The upper d is not merged with l2's d: the whiteout in l1 stopped the merge.
        XCTAssertEqual(names(v, "d"), ["x"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("d/y") }
        XCTAssertEqual(names(v, ""), ["d", "f"])
    }

    /// §6.10: an opaque directory in the middle layer stops the merge below it.
    func testOpaqueInMiddleStopsMerge() throws {
        try fx.layer("top").file("d/a", "a")
        try fx.layer("mid").dir("d", opaque: "y").file("d/b", "b")
        try fx.layer("bot").file("d/c", "c").file("d/a", "bottom-a")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(names(v, "d"), ["a", "b"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("d/c") }
        XCTAssertEqual(try text(v, "d/a"), "a")
        XCTAssertEqual(try v.resolve("d").layers.map(\.layer), [0, 1])
    }

    /// §6.10 in the top layer: the topmost opaque dir shows only its own children.
    func testOpaqueOnTopHidesEverythingBelow() throws {
        try fx.layer("top").dir("d", opaque: "y").file("d/a", "a")
        try fx.layer("bot").file("d/b", "b")
        let v = try view(["top", "bot"])
        XCTAssertEqual(names(v, "d"), ["a"])
    }

    /// §6.19: opaque values other than exactly "y" ("yy", "x", "n", "") are not opaque.
    func testOpaqueValueOtherThanYIsNotOpaque() throws {
        try fx.layer("top").dir("yy", opaque: "yy").file("yy/a", "a")
            .dir("x", opaque: "x").file("x/a", "a")
            .dir("n", opaque: "n").file("n/a", "a")
            .dir("Y", opaque: "Y").file("Y/a", "a")
        try fx.layer("bot").file("yy/b", "b").file("x/b", "b").file("n/b", "b").file("Y/b", "b")
        let v = try view(["top", "bot"])
        for d in ["yy", "x", "n", "Y"] {
            XCTAssertEqual(names(v, d), ["a", "b"], "opaque value '\(d)' must not be opaque")
            XCTAssertEqual(try text(v, d + "/b"), "b")
        }
    }

    /// §6.11: a file above a directory hides the directory and everything under it.
    func testFileOverDirectory() throws {
        try fx.layer("top").file("x", "file")
        try fx.layer("bot").file("x/child", "child").dir("x/sub")
        let v = try view(["top", "bot"])
        let st = try v.stat("x")
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG)
        XCTAssertEqual(try text(v, "x"), "file")
        XCTAssertErrno([.notDirectory, .noSuchFileOrDirectory]) { try v.stat("x/child") }
        XCTAssertErrno([.notDirectory, .noSuchFileOrDirectory]) { try v.stat("x/sub") }
        XCTAssertErrno([.notDirectory]) { try v.list("x") }
        XCTAssertEqual(names(v, ""), ["x"])
    }

    /// §6.11: a directory above a file is not merged with it (and a symlink is a non-directory too).
    func testDirectoryOverFileAndSymlink() throws {
        try fx.layer("top").file("y/a", "a").file("z/a", "a")
        try fx.layer("mid").file("y", "file")
        try fx.layer("bot").file("y/b", "b-below-the-file").symlink("z", to: "y")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(try v.stat("y").st_mode & S_IFMT, S_IFDIR)
        XCTAssertEqual(names(v, "y"), ["a"], "a dir over a file must not merge with anything below the file")
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("y/b") }
        XCTAssertEqual(names(v, "z"), ["a"])
        XCTAssertEqual(try v.resolve("y").layers.count, 1)
    }

    /// A whiteout of a directory hides the whole lower directory; the name can come back above it.
    func testWhiteoutOfDirectoryAndDirectoryAboveWhiteout() throws {
        try fx.layer("top").dir("d").file("d/new", "new")
        try fx.layer("mid").whiteout("d").whiteout("e")
        try fx.layer("bot").file("d/old", "old").file("e/old", "old")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(names(v, "d"), ["new"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("e") }
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("e/old") }
    }

    /// §6.20: `.wh.foo` (and `.wh..wh..opq`) in an UPPER dir are plain files, as for the kernel.
    func testOCINamesInUpperArePlainFiles() throws {
        try fx.layer("upper").file(".wh.foo", "plain").file("d/.wh..wh..opq", "marker").file("d/u", "u")
        try fx.layer("lower").file("foo", "lower-foo").file("d/l", "l")
        let v = try view(["lower"], upper: "upper")
        XCTAssertEqual(names(v, ""), [".wh.foo", "d", "foo"])
        XCTAssertEqual(try text(v, ".wh.foo"), "plain")
        XCTAssertEqual(try text(v, "foo"), "lower-foo")
        XCTAssertEqual(names(v, "d"), [".wh..wh..opq", "l", "u"])
    }

    /// OCI form in lowers: `.wh.NAME` hides NAME below, `.wh..wh..opq` makes its dir opaque,
    /// and neither marker is listed.
    func testOCIWhiteoutsInLowers() throws {
        try fx.layer("top").ociWhiteout("foo").ociWhiteout("sub/gone").ociOpaque("d").file("d/a", "a")
            .file("sub/kept2", "k2")
        try fx.layer("mid").file("foo", "mid-foo").file("d/b", "b").file("sub/gone", "g").file("sub/kept", "k")
            .file("bar", "bar")
        let v = try view(["top", "mid"])
        XCTAssertEqual(names(v, ""), ["bar", "d", "sub"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("foo") }
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat(".wh.foo") }
        XCTAssertEqual(names(v, "d"), ["a"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("d/b") }
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("d/.wh..wh..opq") }
        XCTAssertEqual(names(v, "sub"), ["kept", "kept2"])
    }

    /// OCI whiteout in a middle layer: hides the bottom, the top still shows the name.
    func testOCIWhiteoutInMiddleKeepsTop() throws {
        try fx.layer("top").file("f", "top")
        try fx.layer("mid").ociWhiteout("f").ociWhiteout("g")
        try fx.layer("bot").file("f", "bottom").file("g", "bottom")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(try text(v, "f"), "top")
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("g") }
        XCTAssertEqual(names(v, ""), ["f"])
    }

    /// `no_oci_whiteouts`: `.wh.x` and `.wh..wh..opq` are plain files, like the kernel shows them.
    func testOCIWhiteoutsDisabled() throws {
        try fx.layer("top").ociWhiteout("foo").ociOpaque("d").file("d/a", "a")
        try fx.layer("bot").file("foo", "foo").file("d/b", "b")
        let v = try view(["top", "bot"], oci: false)
        XCTAssertEqual(names(v, ""), [".wh.foo", "d", "foo"])
        XCTAssertEqual(try text(v, "foo"), "foo")
        XCTAssertEqual(names(v, "d"), [".wh..wh..opq", "a", "b"])
    }

    /// Xattr whiteouts in lowers: lookup always hides them; readdir lists them unless the
    /// parent's opaque value is "x".
    func testXattrWhiteoutsInLowerSubdirectory() throws {
        try fx.layer("top").dir("plain").xattrWhiteout("plain/w").dir("xd", opaque: "x").xattrWhiteout("xd/w")
            .file("xd/a", "a")
        try fx.layer("bot").file("plain/w", "w").file("xd/w", "w").file("xd/b", "b")
        let v = try view(["top", "bot"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("plain/w") }
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("xd/w") }
        XCTAssertEqual(names(v, "plain"), ["w"], "readdir hides an xattr whiteout only in an 'x' parent")
        XCTAssertEqual(names(v, "xd"), ["a", "b"], "'x' is not opaque, and its xattr whiteouts are hidden")
    }

    /// An empty lower file is a whiteout when it carries the whiteout xattr of either
    /// namespace, among other xattrs or alone, and even when its names do not fit the list
    /// `isXattrWhiteout` reads first; the escaped name, or other xattrs alone, do not count.
    func testXattrWhiteoutFoundAmongOtherXattrs() throws {
        let long = String(repeating: "n", count: 200)
        let top = try fx.layer("top")
        try top.file("u", "").setXattr("u", "user.overlay.whiteout", "")
        try top.file("mixed", "").setXattr("mixed", "user.a", "1").setXattr("mixed", "trusted.overlay.whiteout", "y")
            .setXattr("mixed", "user.b", "2")
        try top.file("many", "")
        for i in 0..<8 { try top.setXattr("many", "user.\(i)\(long)", "v") }
        try top.setXattr("many", "user.overlay.whiteout", "")
        try top.file("escaped", "").setXattr("escaped", "trusted.overlay.overlay.whiteout", "y")
        try top.file("others", "").setXattr("others", "user.overlay.whiteoutx", "").setXattr("others", "user.x", "1")
        try fx.layer("bot").file("u", "u").file("mixed", "m").file("many", "m").file("escaped", "e").file("others", "o")
        let v = try view(["top", "bot"])
        for name in ["u", "mixed", "many"] {
            XCTAssertErrno([.noSuchFileOrDirectory], { try v.stat(name) }, name)
        }
        XCTAssertEqual(try text(v, "escaped"), "")
        XCTAssertEqual(try text(v, "others"), "")
    }

    /// A non-empty file with the whiteout xattr is a plain file.
    func testXattrWhiteoutMustBeEmpty() throws {
        try fx.layer("top").dir("xd", opaque: "x").file("xd/w", "data")
        try fx.layer("top").setXattr("xd/w", "trusted.overlay.whiteout", "y")
        try fx.layer("bot").file("xd/w", "below")
        let v = try view(["top", "bot"])
        XCTAssertEqual(try text(v, "xd/w"), "data")
        XCTAssertEqual(names(v, "xd"), ["w"])
    }

    /// Xattr whiteouts at a layer ROOT whose opaque value is "x": readdir of the merged root must
    /// hide them too (the kernel does).
    func testXattrWhiteoutsInLayerRootMarkedX() throws {
        try fx.layer("top").dir("", opaque: "x").xattrWhiteout("w").file("a", "a")
        try fx.layer("bot").file("w", "w").file("b", "b")
        let v = try view(["top", "bot"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("w") }
        XCTAssertEqual(names(v, ""), ["a", "b"])
    }

    /// A whiteout in the only layer hides nothing and is never listed.
    func testWhiteoutAloneIsHidden() throws {
        try fx.layer("only").whiteout("w").file("f", "f")
        let v = try view(["only"])
        XCTAssertEqual(names(v, ""), ["f"])
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.stat("w") }
    }

    /// Deep paths resolve through merged directories at every level.
    func testDeepMergedPath() throws {
        var path = ""
        for i in 0..<40 { path += (path.isEmpty ? "" : "/") + "d\(i)" }
        try fx.layer("top").file(path + "/top", "t")
        try fx.layer("bot").file(path + "/bot", "b")
        let v = try view(["top", "bot"])
        XCTAssertEqual(names(v, path), ["bot", "top"])
        XCTAssertEqual(try text(v, path + "/bot"), "b")
        XCTAssertEqual(try v.resolve(path).layers.count, 2)
    }
}
