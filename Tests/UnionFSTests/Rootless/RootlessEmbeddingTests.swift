import Foundation
import Glibc
import XCTest

/// `UnionMount` (the Swift example) and the C API mount as a plain user: libfuse goes through
/// fusermount3, the example changes a file through the mount, unmounts and reads the result.
final class RootlessEmbeddingTests: TempDirTestCase {
    /// The built example next to the test binary's build products.
    private func built(_ name: String) throws -> String {
        let path = TestEnvironment.dirname(TestEnvironment.binary) + "/" + name
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("\(name) is not built at \(path) (swift build builds it)")
            throw XCTSkip("not built")
        }
        return path
    }

    func testSwiftExampleRunsAsPlainUser() throws {
        let started = Date()
        let user = try RootlessUser(subordinateIDs: false, for: self)
        let example = try built("unionfs-embed-example")
        let r = try user.shell("cd /tmp && \"\(example)\"", timeout: 60)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.hasSuffix("ok\n"), r.stdout)
        // A helper may still be exiting (fusermount3 run by libfuse's unmount): a bounded wait.
        let deadline = Date().addingTimeInterval(3)
        while !RootlessUser.processes(of: user.uid).isEmpty && Date() < deadline { usleep(20_000) }
        let left = RootlessUser.processes(of: user.uid).map { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "\(pid)"
        }
        XCTAssertTrue(left.isEmpty, "the example left a process: \(left)")
        XCTAssertFalse(MountTable.entries().contains { $0.mountPoint.hasPrefix("/tmp/unionfs-embed.") && $0.fsType.contains("unionfs") },
                       "the example left a mount")
        print("RootlessEmbeddingTests: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
