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
            // And a container of it sees the changes (runc; the ulimits are what this host allows).
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/runc") {
                let seen = try podman(["run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000",
                                       "--ulimit", "nproc=4096:4096", "localhost/changed:1", "/bin/sh", "-c",
                                       "cat /etc/added; test -e /etc/removeme || echo removed"], root: other)
                XCTAssertEqual(seen, "committed\nremoved", format)
            }
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

/// Layers in every compression, through save and load; progress only on a terminal.
final class ImageCompressionTests: ImageTestCase {
    func testCompressionsRoundTrip() throws {
        let rootfs = try makeRootfs("rootfs")
        try imageOK(["import", try tar(rootfs, to: tmp + "/rootfs.tar"), "localhost/base"])
        let upper = try makeDir("upper/etc")
        try "z\n".write(toFile: upper + "/zfile", atomically: false, encoding: .utf8)
        for compression in ["none", "gzip", "zstd"] {
            let out = try imageOK(["commit", "--quiet", "--compress", compression, "--upper", tmp + "/upper",
                                   "--from", "localhost/base", "localhost/c:" + compression])
            XCTAssertTrue(out.contains("digest sha256:"), out)
            let archive = tmp + "/c-\(compression).tar"
            try imageOK(["save", "localhost/c:" + compression, archive])
            let fresh = tmp + "/fresh-" + compression
            let r = try Run.program(TestEnvironment.binary, ["image", "load", "--store", fresh, archive], timeout: 60)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stderr, "", "nothing but the result in a pipe")
            XCTAssertEqual(r.stdout, "Loaded image: localhost/c:\(compression)\n")
            let saved = try String(contentsOfFile: fresh + "/blobs/sha256/" + String(out.split(separator: "\n")
                .first { $0.hasPrefix("manifest ") }!.dropFirst("manifest sha256:".count)), encoding: .utf8)
            let type = compression == "none" ? "tar\"" : "tar+\(compression)\""
            XCTAssertTrue(saved.contains("application/vnd.oci.image.layer.v1." + type), saved)
            let mnt = try mountImage("localhost/c:" + compression, ["--store", fresh], name: "mnt-" + compression)
            XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/zfile", encoding: .utf8), "z\n")
            XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/greeting", encoding: .utf8), "hello\n")
            unmount(mnt)
        }
    }

    /// On a terminal (a pty from script(1)) load shows progress on stderr.
    func testProgressOnTerminal() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { throw XCTSkip("script(1) is missing") }
        let rootfs = try makeRootfs("rootfs")
        try imageOK(["import", try tar(rootfs, to: tmp + "/rootfs.tar"), "localhost/base"])
        let archive = tmp + "/base.tar"
        try imageOK(["save", "localhost/base", archive])
        let command = "'\(TestEnvironment.binary)' image load --store '\(tmp)/tty-store' '\(archive)'"
        let r = try Run.program("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("layer 1/1"), r.stdout)
        XCTAssertTrue(r.stdout.contains("Loaded image: localhost/base:latest"), r.stdout)
    }
}
