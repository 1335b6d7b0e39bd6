import Foundation
import Glibc
import XCTest

/// Base for tests that mount: needs root, /dev/fuse and the built binary.
class MountTestCase: TempDirTestCase {
    var fx: LayerFixture!

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("mount tests need root") }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw XCTSkip("no /dev/fuse") }
        guard FileManager.default.isExecutableFile(atPath: TestEnvironment.binary) else {
            XCTFail("unionfs-swift is not built at \(TestEnvironment.binary): run swift build first")
            throw XCTSkip("no binary")
        }
        fx = try LayerFixture(root: tmp + "/layers")
    }

    func lowerdirOption(_ layers: [String]) -> String {
        "lowerdir=" + layers.map { fx.path($0).replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":")
    }

    /// Mounts `layers` (top first) with unionfs-swift, snapshots, unmounts; then the same with
    /// kernel overlayfs; requires identical trees. Returns the unionfs-swift snapshot.
    @discardableResult
    func assertMatchesKernel(_ layers: [String], extraOptions: String = "", minimumPaths: Int,
                             file: StaticString = #filePath, line: UInt = #line) throws -> TreeSnapshot {
        let fuse = try fuseMount(lowerdirOption(layers) + extraOptions)
        let mine = try TreeSnapshot.walk(fuse.mountPoint)
        let badInodes = mine.inodes.filter { $0.dIno != $0.stIno }
        XCTAssertTrue(badInodes.isEmpty, "d_ino != st_ino for: " + badInodes.prefix(10).map { "/\($0.path) (\($0.dIno) vs \($0.stIno))" }
            .joined(separator: ", "), file: file, line: line)
        fuse.stop()
        XCTAssertFalse(MountTable.isMounted(fuse.mountPoint), "fuse mount still there after stop", file: file, line: line)
        let kernel = try kernelMount(lowers: layers.map { fx.path($0) })
        let reference = try TreeSnapshot.walk(kernel.mountPoint)
        kernel.stop()
        XCTAssertGreaterThanOrEqual(reference.entries.count, minimumPaths, "fixture smaller than intended", file: file, line: line)
        XCTAssertTreesEqual(mine, reference, "(unionfs-swift vs kernel overlayfs)", file: file, line: line)
        return mine
    }
}
