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

    /// The C API as a plain user (issue 14): Examples/C/example.c compiled against the
    /// CMake-built libunionfs.so (scripts/cmake-check.sh builds it into build-cmake/, and CI runs
    /// that before the tests), copied where the user can read it, run by a throw-away user.
    func testCExampleRunsAsPlainUser() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let build = ProcessInfo.processInfo.environment["UNIONFS_CMAKE_BUILD"] ?? root + "/build-cmake"
        // The library and its SONAME and link-time names (symlinks beside it).
        let found = try Run.program("/usr/bin/find", [build, "-maxdepth", "1", "-name", "libunionfs.so*"])
        let libraries = found.stdout.split(separator: "\n").map(String.init)
        guard !libraries.isEmpty else {
            throw XCTSkip("no libunionfs.so under \(build): run scripts/cmake-check.sh first (CI does)")
        }
        let user = try RootlessUser(subordinateIDs: false, for: self)
        let dir = try makeDir("capi")
        chmod(tmp, 0o755); chmod(dir, 0o755)
        for l in libraries {
            XCTAssertNoThrow(try FileManager.default.copyItem(atPath: l, toPath: dir + "/" + (l as NSString).lastPathComponent))
        }
        let cc = try Run.program("/usr/bin/cc", ["-Wall", "-Werror", "-I", root + "/include", "-o", dir + "/example",
                                                 root + "/Examples/C/example.c", "-L", dir, "-lunionfs", "-Wl,-rpath," + dir],
                                 timeout: 120)
        XCTAssertEqual(cc.status, 0, cc.stderr)
        let r = try user.shell("cd /tmp && \"\(dir)/example\"", timeout: 120)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.hasSuffix("ok\n"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("diffID sha256:"), r.stdout)
        let deadline = Date().addingTimeInterval(3)
        while !RootlessUser.processes(of: user.uid).isEmpty && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(RootlessUser.processes(of: user.uid).isEmpty, "the C example left a process")
        XCTAssertFalse(MountTable.entries().contains { $0.mountPoint.hasPrefix("/tmp/unionfs-c-example.") },
                       "the C example left a mount")
    }
}
