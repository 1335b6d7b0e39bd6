import Foundation
import Glibc
import XCTest

/// Damaged or hostile archives: one clear error naming the problem, the store unchanged.
final class ImageBadInputTests: ImageTestCase {
    /// Loads `archive`, expecting failure with `message` in the one error line, and checks
    /// that the store holds what it held before.
    func assertLoadFails(_ archive: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = storeContents()
        let r = try image(["load", archive])
        XCTAssertNotEqual(r.status, 0, file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("unionfs-swift: "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(message), "expected '\(message)' in: \(r.stderr)", file: file, line: line)
        XCTAssertEqual(storeContents(), before, "the store changed", file: file, line: line)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: store + "/tmp")) ?? [], [], file: file, line: line)
    }

    func layerTar(_ name: String, _ files: [String: String]) throws -> String {
        let dir = try makeDir(name)
        for (path, content) in files {
            try FileManager.default.createDirectory(atPath: dir + "/" + TestEnvironment.dirname(path), withIntermediateDirectories: true)
            try content.write(toFile: dir + "/" + path, atomically: false, encoding: .utf8)
        }
        return try tar(dir, to: dir + ".tar")
    }

    func testTamperedBlobs() throws {
        // A good image first, so that "unchanged" means something.
        let good = tmp + "/good"
        try writeLayout(good, layers: [try layerTar("l0", ["etc/a": "a\n"])])
        try imageOK(["load", good])

        let base = try layerTar("l1", ["etc/b": "b\n"])
        let top = try layerTar("l2", ["etc/c": "c\n"])
        let layout = tmp + "/tampered"
        try writeLayout(layout, layers: [base, top])
        // Flip a byte of the top layer's blob: its digest no longer matches.
        let topHex = try sha256(top)
        let blob = layout + "/blobs/sha256/" + topHex
        var bytes = try Data(contentsOf: URL(fileURLWithPath: blob))
        bytes[600] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: blob))
        try assertLoadFails(layout, "layer 2/2")
        try assertLoadFails(layout, "digest mismatch")

        // A wrong diffID in the config.
        let wrongDiff = tmp + "/wrongdiff"
        try writeLayout(wrongDiff, layers: [base], diffIDs: ["sha256:" + String(repeating: "0", count: 64)])
        try assertLoadFails(wrongDiff, "diffID mismatch")

        // A missing blob.
        let missing = tmp + "/missing"
        try writeLayout(missing, layers: [base])
        try FileManager.default.removeItem(atPath: missing + "/blobs/sha256/" + (try sha256(base)))
        try assertLoadFails(missing, "blob missing")
    }

    /// A docker-archive whose layer was changed inside the archive: its diffID no longer
    /// matches the config's.
    func testTamperedDockerArchiveLayer() throws {
        try makeBaseImage()
        let archive = try podmanSave("localhost/base:latest", format: "docker-archive")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
        let at = try XCTUnwrap(bytes.range(of: Data("hello\n".utf8)))
        bytes[at.lowerBound] = UInt8(ascii: "j")
        try bytes.write(to: URL(fileURLWithPath: archive))
        try assertLoadFails(archive, "diffID mismatch")
    }

    func testTruncatedArchive() throws {
        let layout = tmp + "/layout"
        try writeLayout(layout, layers: [try layerTar("l1", ["etc/b": String(repeating: "b", count: 100_000)])])
        let archive = try tar(layout, to: tmp + "/layout.tar")
        let size = try FileManager.default.attributesOfItem(atPath: archive)[.size] as! Int
        XCTAssertEqual(truncate(archive, off_t(size / 2)), 0)
        try assertLoadFails(archive, "archive")
        // A truncated layer blob inside a complete layout: shorter than its manifest says.
        let blob = layout + "/blobs/sha256/" + (try sha256(tmp + "/l1.tar"))
        XCTAssertEqual(truncate(blob, 5000), 0)
        try assertLoadFails(layout, "layer")
    }

    func testPathEscapeInLayer() throws {
        let dir = try makeDir("evil/sub")
        try "x\n".write(toFile: tmp + "/evil/escaped", atomically: false, encoding: .utf8)
        try shell("cd '\(dir)' && tar -P -cf ../../evil.tar ../escaped")
        let layout = tmp + "/layout"
        try writeLayout(layout, layers: [tmp + "/evil.tar"])
        try assertLoadFails(layout, "escaped")
        XCTAssertFalse(FileManager.default.fileExists(atPath: store + "/escaped"))
    }

    /// Unknown references and wrong option combinations: one line naming them.
    func testUnknownReferencesAndOptions() throws {
        for (args, message) in [(["rm", "nosuch"], "image 'nosuch' is not in the store"),
                                (["mount", "nosuch", tmp], "image 'nosuch' is not in the store"),
                                (["mount", "--upper", tmp + "/u", "nosuch", tmp], "--upper and --workdir need --writable"),
                                (["mount", "--writable", "nosuch", tmp], "--writable needs --upper DIR"),
                                (["save", "--format", "zip", "nosuch", tmp + "/o.tar"], "'zip' is invalid for '--format"),
                                (["commit", "--upper", tmp, "--from", "nosuch", "new"], "image 'nosuch' is not in the store"),
                                (["load", tmp + "/absent.tar"], "archive '\(tmp)/absent.tar'")] {
            let r = try image(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("unionfs-swift: ") && r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    func testBadManifests() throws {
        let layer = try layerTar("l1", ["etc/b": "b\n"])
        let unknown = tmp + "/unknown"
        try writeLayout(unknown, layers: [layer]) { m in
            var layers = m["layers"] as! [[String: Any]]
            layers[0]["mediaType"] = "application/x-surprise"
            m["layers"] = layers
        }
        try assertLoadFails(unknown, "unknown media type 'application/x-surprise'")

        let absurd = tmp + "/absurd"
        try writeLayout(absurd, layers: [layer]) { m in
            var layers = m["layers"] as! [[String: Any]]
            layers[0]["size"] = Int64(1) << 52
            m["layers"] = layers
        }
        try assertLoadFails(absurd, "absurd size")

        let unparsable = tmp + "/unparsable"
        try writeLayout(unparsable, layers: [layer]) { m in m["layers"] = "nope" }
        try assertLoadFails(unparsable, "does not parse")

        let notAnArchive = tmp + "/plain.txt"
        try "hello".write(toFile: notAnArchive, atomically: false, encoding: .utf8)
        try assertLoadFails(notAnArchive, "plain.txt")
    }
}
