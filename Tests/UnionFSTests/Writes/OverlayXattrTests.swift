import CLinux
import Foundation
import Glibc
import XCTest

/// Issue 15 item 7: which xattrs are the overlay's, decided by kernel overlayfs on this machine
/// (a `trusted` mount as root). Kernel 6.7+: its own namespace's `trusted.overlay.*` is hidden
/// and stays behind at copy-up; `trusted.overlay.X` set through the mount is stored escaped as
/// `trusted.overlay.overlay.X` and shown back as `trusted.overlay.X`; the other namespace's
/// `user.overlay.*` is an ordinary xattr: shown, copied up, settable.
final class OverlayXattrTests: WriteTestCase {
    private let lowerXattrs = [("user.overlay.x", "lowerx"), ("trusted.overlay.y", "lowery"),
                               ("trusted.overlay.overlay.q", "escq"), ("user.plain", "p")]

    /// One lower with `f`, `g` and `d` carrying `lowerXattrs`.
    private func lower(_ name: String) throws -> String {
        var layer = try fx.layer(name).file("f", "f").file("g", "g").dir("d")
        for path in ["f", "g", "d"] {
            for (x, v) in lowerXattrs { layer = try layer.setXattr(path, x, v) }
        }
        return fx.path(name)
    }

    /// `xattrs` of `path` as (name, value), sorted.
    private func xattrs(_ path: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for n in try TreeSnapshot.xattrNames(path) {
            out[n] = String(decoding: try TreeSnapshot.xattrValue(path, n), as: UTF8.self)
        }
        return out
    }

    private func xattrErrno(_ body: () -> Int) -> Int32 { body() < 0 ? errno : 0 }

    func testPrivateXattrsAsTheKernelHasThem() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("trusted xattrs and kernel overlayfs need root") }
        let low = try lower("low")
        try mountWritable(["low"])
        let kUpper = try makeDir("k-upper"), kWork = try makeDir("k-work")
        let k = try kernelMount(lowers: [low], upper: kUpper, work: kWork, name: "k-mnt")
        func km(_ rel: String) -> String { k.mountPoint + "/" + rel }

        // Before copy-up: the same names and values.
        for path in ["f", "d"] {
            XCTAssertEqual(try xattrs(m(path)), try xattrs(km(path)), "xattrs of \(path) before copy-up")
        }
        XCTAssertEqual(try xattrs(m("f"))["user.overlay.x"], "lowerx", "the other namespace is ordinary")
        XCTAssertEqual(try xattrs(m("f"))["trusted.overlay.q"], "escq", "an escaped xattr is shown unescaped")
        XCTAssertNil(try xattrs(m("f"))["trusted.overlay.y"])
        XCTAssertEqual(xattrErrno { getxattr(m("f"), "trusted.overlay.y", nil, 0) }, ENODATA)
        XCTAssertEqual(xattrErrno { getxattr(m("f"), "trusted.overlay.overlay.q", nil, 0) }, ENODATA)

        // Copy-up (a chmod) takes the same xattrs along, stored as they were.
        for root in [mount.mountPoint, k.mountPoint] {
            XCTAssertEqual(chmod(root + "/f", 0o600), 0)
            XCTAssertEqual(mkdir(root + "/d/new", 0o755), 0)
        }
        for path in ["f", "d"] {
            let mine = try xattrs(u(path)), theirs = try xattrs(kUpper + "/" + path).filter { $0.key != "trusted.overlay.origin" }
            XCTAssertEqual(mine.filter { $0.key != "trusted.overlay.opaque" }, theirs.filter { $0.key != "trusted.overlay.opaque" },
                           "upper xattrs of \(path) after copy-up")
            XCTAssertEqual(mine["user.overlay.x"], "lowerx")
            XCTAssertEqual(mine["trusted.overlay.overlay.q"], "escq")
            XCTAssertNil(mine["trusted.overlay.y"])
            XCTAssertEqual(try xattrs(m(path)), try xattrs(km(path)), "xattrs of \(path) after copy-up")
        }

        // Set and remove through the mount: trusted.overlay.X is stored escaped, user.overlay.x plainly.
        for root in [mount.mountPoint, k.mountPoint] {
            XCTAssertEqual(xattrErrno { Int(setxattr(root + "/g", "trusted.overlay.new", "v", 1, 0)) }, 0, root)
            XCTAssertEqual(xattrErrno { Int(setxattr(root + "/g", "user.overlay.x", "set", 3, 0)) }, 0, root)
            XCTAssertEqual(xattrErrno { Int(removexattr(root + "/g", "trusted.overlay.q")) }, 0, root)
        }
        XCTAssertEqual(try xattrs(u("g")), try xattrs(kUpper + "/g").filter { $0.key != "trusted.overlay.origin" })
        XCTAssertEqual(try xattrs(u("g"))["trusted.overlay.overlay.new"], "v")
        XCTAssertEqual(try xattrs(m("g")), try xattrs(km("g")))
        XCTAssertEqual(try xattrs(m("g"))["trusted.overlay.new"], "v")
        XCTAssertEqual(xattrErrno { Int(removexattr(m("g"), "trusted.overlay.y")) }, ENODATA, "a private xattr is not there to remove")

        // Beyond the kernel: the other namespace's markers are honoured in lowers, so they are
        // never set through the mount (the kernel would store user.overlay.opaque plainly).
        XCTAssertEqual(xattrErrno { Int(setxattr(m("g"), "user.overlay.opaque", "y", 1, 0)) }, EPERM)
        XCTAssertEqual(xattrErrno { Int(setxattr(m("g"), "user.overlay.whiteout", "y", 1, 0)) }, EPERM)
        k.stop()
        try finishAndCompareWithKernel()
    }

    /// The same rule in the `user` namespace (the kernel's `userxattr`), in process and without
    /// root: a lower file's `user.overlay.x` is the overlay's, `user.overlay.X` set through the
    /// mount is stored as `user.overlay.overlay.X` and read back under its own name.
    func testUserNamespaceEscapingInProcess() throws {
        try fx.layer("low").file("f", "f").setXattr("f", "user.overlay.x", "1").setXattr("f", "user.plain", "p")
            .setXattr("f", "user.overlay.overlay.q", "escq")
        let upper = try makeDir("in-upper")
        let h = try CoreHarness(lowers: [fx.path("low")], upper: upper, work: try makeDir("in-work"), namespace: .user)
        XCTAssertEqual(try h.xattrNames("f").get().sorted(), ["user.overlay.q", "user.plain"])
        XCTAssertEqual(h.setxattr("f", "user.overlay.new", "v"), 0)
        XCTAssertEqual(try h.getxattr("f", "user.overlay.new").get(), Array("v".utf8))
        XCTAssertEqual(try h.xattrNames("f").get().sorted(), ["user.overlay.new", "user.overlay.q", "user.plain"])
        let stored = try TreeSnapshot.xattrNames(upper + "/f").sorted()
        XCTAssertEqual(stored, ["user.overlay.overlay.new", "user.overlay.overlay.q", "user.plain"],
                       "copied up without user.overlay.x; the new one stored escaped")
        XCTAssertEqual(h.setxattr("f", "trusted.overlay.opaque", "y"), EPERM, "the other namespace's marker")
    }
}
