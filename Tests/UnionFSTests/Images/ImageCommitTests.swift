import Foundation
import Glibc
import XCTest

/// Writable mounts, commit, save (read back by podman), export and import.
final class ImageCommitTests: ImageTestCase {
    /// Changes through a writable mount, committed twice to the same digests; both saved
    /// formats load into podman, which shows the changes.
    func testCommitSaveAndPodmanLoad() throws {
        try makeBaseImage()
        try imageOK(["load", try podmanSave("localhost/base:latest", format: "oci-archive")])
        let upper = tmp + "/upper"
        let mnt = try mountImage("localhost/base", ["--writable", "--upper", upper])
        try "committed\n".write(toFile: mnt + "/etc/added", atomically: false, encoding: .utf8)
        XCTAssertEqual(unlink(mnt + "/etc/removeme"), 0)
        unmount(mnt)

        let first = try imageOK(["commit", "--upper", upper, "--from", "localhost/base", "localhost/changed:1"])
        let second = try imageOK(["commit", "--upper", upper, "--from", "localhost/base", "localhost/changed:2"])
        XCTAssertTrue(first.hasPrefix("image sha256:"), first)
        XCTAssertEqual(first, second, "the same upper must give the same digests")

        let check = try mountImage("localhost/changed:1", name: "check")
        XCTAssertEqual(try String(contentsOfFile: check + "/etc/added", encoding: .utf8), "committed\n")
        XCTAssertEqual(access(check + "/etc/removeme", F_OK), -1)
        let ours = try TreeSnapshot.walk(check)
        unmount(check)

        for format in ["oci", "docker-archive"] {
            let out = tmp + "/changed-\(format).tar"
            try imageOK(["save", "--format", format, "localhost/changed:1", out])
            let other = tmp + "/podman-" + format
            let loaded = try podman(["load", "-i", out], root: other)
            XCTAssertTrue(loaded.contains("localhost/changed:1"), loaded)
            let tree = try podmanTree("localhost/changed:1", root: other)
            XCTAssertTreesEqual(tree, ours, ignoringDirectorySize: true)
            // And it loads back here, into a fresh store.
            let again = try Run.program(TestEnvironment.binary, ["image", "load", "--store", tmp + "/store-" + format, out], timeout: 60)
            XCTAssertEqual(again.status, 0, again.stderr)
        }
    }

    /// export gives the flattened rootfs; import makes a one-layer image of it with the same tree.
    func testExportImport() throws {
        try makeBaseImage()
        try makeDerivedImage(from: "localhost/base:latest", as: "localhost/derived:latest")
        try imageOK(["load", try podmanSave("localhost/derived:latest", format: "oci-archive")])
        let mnt = try mountImage("localhost/derived")
        let expected = try TreeSnapshot.walk(mnt)
        unmount(mnt)
        let flat = tmp + "/flat.tar"
        try imageOK(["export", "localhost/derived", flat])
        let id = try imageOK(["import", flat, "localhost/flat"])
        XCTAssertTrue(id.hasPrefix("sha256:"), id)
        XCTAssertTrue(try imageOK(["ls"]).contains("localhost/flat:latest"))
        let flatMnt = try mountImage("localhost/flat", name: "flat")
        XCTAssertTreesEqual(try TreeSnapshot.walk(flatMnt), expected, ignoringDirectorySize: true)
    }
}
