import Foundation
import Glibc
import XCTest

/// Loading podman's archives in both formats, mounting them, and the shared layer store.
final class ImageLoadTests: ImageTestCase {
    /// Both archive formats of a two-layer image (the top one with deletions and a replaced
    /// dir) load, and `image mount` shows the tree `podman image mount` shows.
    func testBothFormatsMountAsPodmanSees() throws {
        try makeBaseImage()
        try makeDerivedImage(from: "localhost/base:latest", as: "localhost/derived:latest")
        let expected = try podmanTree("localhost/derived:latest")
        XCTAssertNil(expected.entries["etc/removeme"])
        for format in ["oci-archive", "docker-archive"] {
            let archive = try podmanSave("localhost/derived:latest", format: format)
            let out = try imageOK(["load", archive])
            XCTAssertEqual(out, "Loaded image: localhost/derived:latest\n", format)
            let mnt = try mountImage("localhost/derived", name: "mnt-" + format)
            XCTAssertTreesEqual(try TreeSnapshot.walk(mnt), expected, ignoringDirectorySize: true)
            // Read-only by default.
            XCTAssertEqual(open(mnt + "/etc/new-file", O_CREAT | O_WRONLY, 0o644), -1)
            XCTAssertEqual(errno, EROFS)
            unmount(mnt)
        }
        // The same layers from both archives: stored once.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count, 2)
    }

    /// Two images on one base share the base layer: one directory, used by both.
    func testSharedBaseStoredOnce() throws {
        try makeBaseImage()
        try makeDerivedImage(from: "localhost/base:latest", as: "localhost/derived:latest")
        try imageOK(["load", try podmanSave("localhost/base:latest", format: "oci-archive")])
        try imageOK(["load", try podmanSave("localhost/derived:latest", format: "docker-archive")])
        let layers = try imageOK(["ls", "--layers"]).split(separator: "\n").dropFirst()
        XCTAssertEqual(layers.count, 2)
        XCTAssertEqual(layers.filter { $0.hasSuffix(" 2") }.count, 1, "the base layer is used by both images: \(layers)")
        let images = try imageOK(["ls"])
        XCTAssertTrue(images.contains("localhost/base:latest"), images)
        XCTAssertTrue(images.contains("localhost/derived:latest"), images)

        // rm drops the name, prune then the layer only the removed image used.
        try imageOK(["rm", "localhost/derived"])
        XCTAssertFalse(try imageOK(["ls"]).contains("derived"))
        XCTAssertTrue(try imageOK(["prune"]).hasPrefix("removed 1 layers"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count, 1)
        let mnt = try mountImage("localhost/base")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/removeme", encoding: .utf8), "old\n")
    }

    /// A mount directly from an archive loads it first; prune leaves a mounted image's layers
    /// alone even once its name is removed.
    func testMountArchiveAndPruneSparesMountedLayers() throws {
        try makeBaseImage()
        let archive = try podmanSave("localhost/base:latest", format: "oci-archive")
        let mnt = try mountImage(archive)
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/greeting", encoding: .utf8), "hello\n")
        try imageOK(["rm", "localhost/base:latest"])
        XCTAssertTrue(try imageOK(["prune"]).hasPrefix("removed 0 layers"))
        XCTAssertEqual(try String(contentsOfFile: mnt + "/usr/share/doc/README", encoding: .utf8), "doc\n")
        unmount(mnt)
        XCTAssertTrue(try imageOK(["prune"]).hasPrefix("removed 1 layers"))
    }

    /// Several loads of one archive at once: all succeed, the layer is unpacked once.
    func testConcurrentLoads() throws {
        try makeBaseImage()
        let archive = try podmanSave("localhost/base:latest", format: "docker-archive")
        let procs = try (0..<3).map { i in
            try ChildProcess(TestEnvironment.binary, ["image", "load", "--store", store, archive],
                             stdoutPath: tmp + "/load\(i).out", stderrPath: tmp + "/load\(i).err")
        }
        for (i, p) in procs.enumerated() {
            XCTAssertTrue(p.wait(timeout: 60))
            XCTAssertEqual(p.exitStatus, 0, (try? String(contentsOfFile: tmp + "/load\(i).err", encoding: .utf8)) ?? "")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count, 1)
        let mnt = try mountImage("localhost/base")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/greeting", encoding: .utf8), "hello\n")
    }
}
