import Foundation
import UnionFS
import XCTest

/// Applying hand-made tars (Python's tarfile): marker order, and rejection of unsafe tars with
/// the target left exactly as it was.
final class ChangesApplyTests: ChangesTestCase {
    /// Writes `name`.tar in the root from Python lines that add members to the open tarfile `t`
    /// (helpers: `f(name, data)`, `d(name)`, `sym(name, target)`, `hard(name, target)`).
    func makeTar(_ name: String, _ body: String) throws -> String {
        let script = """
            import io, tarfile
            t = tarfile.open('\(name).tar', 'w', format=tarfile.PAX_FORMAT)
            def f(n, data=b''):
                i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
            def d(n):
                i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
            def sym(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; t.addfile(i)
            def hard(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE; i.linkname = target; t.addfile(i)
            \(body.split(separator: "\n").joined(separator: "\n"))
            t.close()
            """
        try script.write(toFile: root + "/\(name).py", atomically: true, encoding: .utf8)
        try sh("python3 \(name).py")
        return root + "/\(name).tar"
    }

    func testOpaqueMarkerAppliesWhereverItAppears() throws {
        let lower = try dir("lower")
        try sh("mkdir d; echo a > d/a; echo b > d/b", in: lower)
        let tars = [
            try makeTar("before", "f('d/.wh..wh..opq')\nd('d')\nf('d/c', b'c')"),
            try makeTar("middle", "d('d')\nf('d/.wh..wh..opq')\nf('d/c', b'c')"),
            try makeTar("after", "d('d')\nf('d/c', b'c')\nf('d/.wh..wh..opq')"),
        ]
        var flattened: [String] = [], layered: [[String]] = []
        for (i, tar) in tars.enumerated() {
            try sh("cp -a lower flat\(i)")
            _ = try LayerApply.apply(tar: tar, to: root + "/flat\(i)", mode: .flatten)
            flattened.append(try sh("ls -A flat\(i)/d"))
            _ = try LayerApply.apply(tar: tar, to: root + "/layer\(i)", mode: .layer(.trusted))
            let view = try UnionView(LayerStackConfiguration(lowerdirs: [root + "/layer\(i)", lower]))
            layered.append(try view.list("/d").map(\.name.description).sorted())
        }
        XCTAssertEqual(flattened, Array(repeating: "c\n", count: 3))
        XCTAssertEqual(layered, Array(repeating: ["c"], count: 3))
    }

    func testWhiteoutsDeleteWhenFlattening() throws {
        let target = try dir("target")
        try sh("mkdir -p d/sub; echo a > d/a; echo s > d/sub/s; echo k > keep", in: target)
        let tar = try makeTar("wh", "f('d/.wh.a')\nf('d/.wh.sub')\nf('d/new', b'n')")
        _ = try LayerApply.apply(tar: tar, to: target, mode: .flatten)
        XCTAssertEqual(try sh("find . | sort", in: target), ".\n./d\n./d/new\n./keep\n")
    }

    /// Each tar has a harmless entry first, so a partial apply would show.
    func testMaliciousTarsAreRejectedAndTargetUnchanged() throws {
        let target = try dir("target")
        try sh("mkdir -p d; echo a > d/a; echo k > keep; ln -s /tmp link-out", in: target)
        let outside = try dir("outside")
        let cases: [(String, String)] = [
            ("dotdot", "f('../outside/evil', b'x')"),
            ("dotdot-deep", "f('d/../../outside/evil', b'x')"),
            ("absolute", "f('/\(outside.dropFirst())/evil', b'x')"),
            ("symlink-escape", "sym('s', '\(outside)')\nf('s/evil', b'x')"),
            ("symlink-existing", "f('link-out/evil', b'x')"),
            ("hardlink-dotdot", "hard('h', '../outside/x')"),
            ("hardlink-absolute", "hard('h', '/etc/passwd')"),
            ("hardlink-through-symlink", "sym('s', '/etc')\nhard('h', 's/passwd')"),
            ("whiteout-empty", "f('d/.wh.')"),
            ("whiteout-dot", "f('d/.wh..')"),
            ("whiteout-dotdot", "f('d/.wh...')"),
            ("whiteout-as-dir", "f('.wh.x/y', b'x')"),
            ("huge-name", "f('d/' + 'n' * 300, b'x')"),
            ("huge-path", "f('/'.join(['p' * 200] * 30), b'x')"),
        ]
        let before = try snapshot(target)
        try sh("touch \(outside)/x")
        for (name, body) in cases {
            let tar = try makeTar(name, "f('good-first', b'g')\n" + body)
            // A symlink of the target only matters when applying onto the target.
            let modes: [ApplyMode] = name == "symlink-existing" ? [.flatten] : [.flatten, .layer(.trusted)]
            for mode in modes {
                let dest = mode == .flatten ? target : root + "/new-layer"
                XCTAssertThrowsError(try LayerApply.apply(tar: tar, to: dest, mode: mode), "\(name) \(mode)") { error in
                    XCTAssertTrue(error is ConfigurationError, "\(name): \(error)")
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/new-layer"), "\(name): no layer dir left")
            }
            XCTAssertEqual(try snapshot(target), before, "\(name): target changed")
            XCTAssertEqual(try sh("ls -A", in: outside), "x\n", "\(name): wrote outside")
            XCTAssertEqual(try sh("ls -A | grep -c apply || true"), "0\n", "\(name): staging left behind")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/evil"))
    }

    func testGarbageAndTruncatedInputRejected() throws {
        let target = try dir("target")
        try sh("echo k > keep", in: target)
        let before = try snapshot(target)
        try "not a tar at all\n".write(toFile: root + "/garbage", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LayerApply.apply(tar: root + "/garbage", to: target, mode: .flatten))
        let tar = try makeTar("big", "f('a', b'x' * 100000)\nf('b', b'y' * 100000)")
        try sh("head -c 60000 big.tar > cut.tar")
        XCTAssertThrowsError(try LayerApply.apply(tar: root + "/cut.tar", to: target, mode: .flatten))
        XCTAssertEqual(try snapshot(target), before)
        _ = tar
    }

    func testLayerTargetMustBeEmpty() throws {
        let target = try dir("target")
        try sh("echo k > keep", in: target)
        let tar = try makeTar("ok", "f('a', b'a')")
        XCTAssertThrowsError(try LayerApply.apply(tar: tar, to: target, mode: .layer(.trusted)))
        let empty = try dir("empty")
        let r = try LayerApply.apply(tar: tar, to: empty, mode: .layer(.trusted))
        XCTAssertEqual(r.entries, 1)
        XCTAssertEqual(try sh("cat empty/a"), "a")
    }
}
