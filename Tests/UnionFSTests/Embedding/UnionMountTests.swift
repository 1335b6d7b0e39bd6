import Foundation
import Glibc
import UnionFS
import XCTest

/// The Swift embedding API: mounts served by threads of the test process itself.
final class UnionMountTests: MountTestCase {
    private func stack(_ name: String, upper: Bool = true) throws -> LayerStackConfiguration {
        try fx.layer(name + "-base").file("base.txt", "base of \(name)\n").dir("d").file("d/old", "old")
        guard upper else { return LayerStackConfiguration(lowerdirs: [fx.path(name + "-base")]) }
        return LayerStackConfiguration(lowerdirs: [fx.path(name + "-base")],
                                       upperdir: try makeDir(name + "-upper"), workdir: try makeDir(name + "-work"))
    }

    private func mount(_ configuration: LayerStackConfiguration, _ name: String) throws -> UnionMount {
        let mnt = try makeDir(name)
        let m = try UnionMount(configuration, at: mnt)
        addCleanup { m.unmount(); MountTable.forceUnmount(mnt) }
        return m
    }

    private func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    /// Two mounts at once, each with its own threads; writes land in each one's own upper; one
    /// unmounts while the other keeps serving; the changes API reads the upper afterwards.
    func testSeveralMountsInOneProcess() throws {
        let a = try stack("a"), b = try stack("b")
        let ma = try mount(a, "mnt-a"), mb = try mount(b, "mnt-b")
        XCTAssertEqual(read(ma.mountpoint + "/base.txt"), "base of a\n")
        XCTAssertEqual(read(mb.mountpoint + "/base.txt"), "base of b\n")
        XCTAssertNoThrow(try "new in a\n".write(toFile: ma.mountpoint + "/new", atomically: false, encoding: .utf8))
        XCTAssertEqual(unlink(mb.mountpoint + "/d/old"), 0)
        ma.unmount()
        XCTAssertFalse(MountTable.isMounted(ma.mountpoint))
        XCTAssertEqual(read(mb.mountpoint + "/base.txt"), "base of b\n", "the other mount still serves")
        XCTAssertNil(read(mb.mountpoint + "/d/old"))
        mb.unmount()
        ma.unmount()  // idempotent
        XCTAssertEqual(read(a.upperdir! + "/new"), "new in a\n")
        XCTAssertEqual(try UpperChanges(lowerdirs: a.lowerdirs, upperdir: a.upperdir!).changes().map(\.description), ["A /new"])
        XCTAssertEqual(try UpperChanges(lowerdirs: b.lowerdirs, upperdir: b.upperdir!).changes().map(\.description),
                       ["C /d", "D /d/old"])
    }

    /// Releasing the last reference unmounts.
    func testReleasingTheHandleUnmounts() throws {
        let configuration = try stack("r", upper: false)
        let mnt = try makeDir("mnt-r")
        addCleanup { MountTable.forceUnmount(mnt) }
        do {
            let m = try UnionMount(configuration, at: mnt)
            XCTAssertTrue(MountTable.isMounted(m.mountpoint, fsTypePrefix: "fuse"))
            XCTAssertEqual(read(mnt + "/base.txt"), "base of r\n")
        }
        XCTAssertTrue(MountTable.wait(for: mnt, mounted: false, timeout: 5), "unmounted when released")
    }

    /// Bad requests are typed errors, not output, and mount nothing.
    func testErrorsAreTyped() throws {
        let mnt = try makeDir("mnt-e")
        XCTAssertThrowsError(try UnionMount(LayerStackConfiguration(lowerdirs: [tmp + "/missing"]), at: mnt)) { error in
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
        let good = try stack("e", upper: false)
        XCTAssertThrowsError(try UnionMount(good, at: tmp + "/no-such-mountpoint")) { error in
            XCTAssertTrue(error is ConfigurationError, "\(error)")
        }
        XCTAssertFalse(MountTable.isMounted(mnt))
    }
}
