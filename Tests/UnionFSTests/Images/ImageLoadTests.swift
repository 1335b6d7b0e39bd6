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
        // Layers are keyed by chain ID: sha256 of "PARENT-CHAIN DIFFID" above the bottom layer.
        let diffs = try podman(["image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", "localhost/derived:latest"])
            .split(separator: " ").map(String.init)
        XCTAssertEqual(diffs.count, 2)
        try "\(diffs[0]) \(diffs[1])".write(toFile: tmp + "/chain", atomically: false, encoding: .utf8)
        let full = try imageOK(["ls", "--layers", "--no-trunc"])
        XCTAssertTrue(full.contains(diffs[0] + "  " + diffs[0]), full)
        XCTAssertTrue(full.contains("sha256:" + (try sha256(tmp + "/chain")) + "  " + diffs[1]), full)
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

/// A multi-platform index: the host's image unless --platform picks another.
final class ImagePlatformTests: ImageTestCase {
    func testIndexPicksPlatform() throws {
        let layout = tmp + "/layout"
        var entries: [[String: Any]] = []
        for (arch, content) in [("arm64", "arm\n"), ("amd64", "amd\n"), ("s390x", "s390\n")] {
            let dir = try makeDir("l-" + arch + "/etc")
            try content.write(toFile: dir + "/arch", atomically: false, encoding: .utf8)
            try writeLayout(layout, layers: [try tar(tmp + "/l-" + arch, to: tmp + "/l-\(arch).tar")])
            let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: layout + "/index.json"))) as! [String: Any]
            var entry = (index["manifests"] as! [[String: Any]])[0]
            entry["annotations"] = nil
            entry["platform"] = ["os": "linux", "architecture": arch]
            entries.append(entry)
        }
        // The platform entries go in a nested index, as registries' multi-arch images have it.
        let nested = try JSONSerialization.data(withJSONObject: ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                                                 "manifests": entries], options: [.sortedKeys])
        try nested.write(to: URL(fileURLWithPath: tmp + "/nested.json"))
        let hex = try sha256(tmp + "/nested.json")
        try nested.write(to: URL(fileURLWithPath: layout + "/blobs/sha256/" + hex))
        let top: [String: Any] = ["schemaVersion": 2, "manifests": [["mediaType": "application/vnd.oci.image.index.v1+json",
                                                                    "digest": "sha256:" + hex, "size": nested.count,
                                                                    "annotations": ["org.opencontainers.image.ref.name": "localhost/multi:latest"]]]]
        try JSONSerialization.data(withJSONObject: top).write(to: URL(fileURLWithPath: layout + "/index.json"))

        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        try XCTSkipUnless(machine == "x86_64", "the fixture's host image is amd64")
        try imageOK(["load", layout])
        var mnt = try mountImage("localhost/multi", name: "host")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/arch", encoding: .utf8), "amd\n")
        unmount(mnt)
        try imageOK(["load", "--platform", "linux/arm64", "--tag", "localhost/multi:arm", layout])
        mnt = try mountImage("localhost/multi:arm", name: "arm")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/arch", encoding: .utf8), "arm\n")
        unmount(mnt)
        let r = try image(["load", "--platform", "linux/riscv64", layout])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("no image for linux/riscv64 (it has linux/amd64, linux/arm64, linux/s390x)"), r.stderr)
    }
}

/// A store made by a user other than root: no whiteout devices can be made, so layers keep
/// the OCI marker files, which the mount reads as whiteouts.
final class ImageRootlessStoreTests: ImageTestCase {
    func testRootlessLoadKeepsOCIMarkers() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("setpriv is missing") }
        try makeBaseImage()
        try makeDerivedImage(from: "localhost/base:latest", as: "localhost/derived:latest")
        let expected = try podmanTree("localhost/derived:latest")
        let archive = try podmanSave("localhost/derived:latest", format: "oci-archive")
        XCTAssertEqual(chmod(tmp, 0o755), 0)
        XCTAssertEqual(chmod(archive, 0o644), 0)
        let home = try makeDir("home")
        XCTAssertEqual(chown(home, 65534, 65534), 0)
        store = home + "/store"
        let r = try Run.program("/usr/bin/setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups",
                                                     TestEnvironment.binary, "image", "load", "--store", store, archive], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let settings = try String(contentsOfFile: store + "/store.json", encoding: .utf8)
        XCTAssertTrue(settings.contains(#""whiteouts":"oci""#) && settings.contains(#""xattrNamespace":"user""#), settings)
        let layers = try FileManager.default.contentsOfDirectory(atPath: store + "/layers")
        XCTAssertTrue(layers.contains { FileManager.default.fileExists(atPath: store + "/layers/\($0)/diff/etc/.wh.removeme") })
        // /dev/fuse is root's here: mount the rootless store as root.
        let mnt = try mountImage("localhost/derived")
        var tree = try TreeSnapshot.walk(mnt)
        // Unpacked without privilege, every file belongs to the user that loaded it.
        for (k, var e) in tree.entries { e.uid = 0; e.gid = 0; tree.entries[k] = e }
        XCTAssertTreesEqual(tree, expected, ignoringDirectorySize: true)
    }
}
