import Foundation
import Glibc
import UnionFS
import XCTest

/// The core's checked reads of layer blobs (`LayerBlob.check`, `LayerApply.apply(expect:)`):
/// digests of the blob and of the tar inside it, whatever the compression; a mismatch leaves
/// the target as it was.
final class ImageBlobCheckTests: ImageTestCase {
    func makeLayer() throws -> String {
        let dir = try makeDir("layer/etc")
        try String(repeating: "data\n", count: 10_000).write(toFile: dir + "/file", atomically: false, encoding: .utf8)
        return try tar(tmp + "/layer", to: tmp + "/layer.tar")
    }

    func testDigestsOfEveryCompression() throws {
        let plain = try makeLayer()
        let diffID = "sha256:" + (try sha256(plain))
        try shell("gzip -k -n '\(plain)'")
        var blobs = [plain, plain + ".gz"]
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd") {
            try shell("zstd -q -k '\(plain)'")
            blobs.append(plain + ".zst")
        }
        for blob in blobs {
            let d = try LayerBlob.check(path: blob)
            XCTAssertEqual(d.diffID.description, diffID, blob)
            XCTAssertEqual(d.digest.description, "sha256:" + (try sha256(blob)), blob)
            XCTAssertEqual(d.size, Int64(try FileManager.default.attributesOfItem(atPath: blob)[.size] as! Int))
            let target = tmp + "/applied-" + (blob.split(separator: "/").last.map(String.init) ?? "")
            let r = try LayerApply.apply(tar: blob, to: target, mode: .layer(.trusted),
                                         expect: LayerExpectation(digest: d.digest.description, size: d.size, diffID: diffID))
            XCTAssertEqual(r.digests, d)
            XCTAssertEqual(try String(contentsOfFile: target + "/etc/file", encoding: .utf8).count, 50_000)
        }
    }

    func testMismatchLeavesTargetAbsent() throws {
        let plain = try makeLayer()
        let size = Int64(try FileManager.default.attributesOfItem(atPath: plain)[.size] as! Int)
        let zero = "sha256:" + String(repeating: "0", count: 64)
        let cases: [(LayerExpectation, String)] = [
            (LayerExpectation(digest: zero), "digest mismatch"),
            (LayerExpectation(diffID: zero), "diffID mismatch"),
            (LayerExpectation(size: size - 1), "larger than"),
            (LayerExpectation(size: size + 1), "truncated"),
            (LayerExpectation(digest: "md5:abc"), "unsupported digest"),
        ]
        for (expect, message) in cases {
            let target = tmp + "/target"
            XCTAssertThrowsError(try LayerApply.apply(tar: plain, to: target, mode: .layer(.trusted), expect: expect)) { e in
                XCTAssertTrue("\(e)".contains(message), "\(expect): \(e)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: target), "\(expect)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).filter { $0.hasPrefix(".target") }, [])
        }
    }
}
