import Foundation
import Glibc
import XCTest

/// Every bad answer a registry can give a pull: a clear error naming it, and the store as it
/// was (no layer, blob or image added).
final class RegistryBadInputTests: RegistryTestCase {
    var registry: RegistryServer!
    /// Big enough for the misbehaving proxy to cut (it leaves blobs under 1 KiB alone).
    let big = String(repeating: "registry test data ", count: 4096)

    override func setUpWithError() throws {
        try super.setUpWithError()
        registry = try startRegistry()
    }

    /// Pulls `ref` expecting failure; checks the message and that the store did not change.
    func pullFails(_ ref: String, _ extra: [String] = [], says needles: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let before = storeContents()
        let r = try pull(ref, extra)
        XCTAssertTrue(r.status == 1, "pull \(ref) should fail with status 1, not \(r.status): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        for n in needles { XCTAssertTrue(r.stderr.contains(n), "'\(n)' not in: \(r.stderr) (stdout: \(r.stdout))", file: file, line: line) }
        XCTAssertEqual(storeContents(), before, "the store changed", file: file, line: line)
        XCTAssertEqual(listDir(store + "/tmp"), [], "staging left behind", file: file, line: line)
    }

    func testUnknownRepositoryOrTag() throws {
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "v1", on: registry)
        try pullFails(registry.address + "/nothing:latest", says: ["manifest latest not found in registry", "(unknown repository, tag or digest)"])
        try pullFails(registry.address + "/app:v2", says: ["manifest v2 not found", "MANIFEST_UNKNOWN"])
    }

    func testAuthDeniedSaysWhatToDo() throws {
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "v1", on: registry)
        let forbidden = try startProxy("forbidden", for: registry)
        try pullFails(forbidden.address + "/app:v1", says: ["403", "lacks the permission"])
        let bearer = try startProxy("bearer", for: registry)
        try pullFails(bearer.address + "/app:v1", says: ["needs credentials", "image login"])
        try pullFails(bearer.address + "/app:v1", ["--creds", "tok-user:wrong"], says: ["rejected the credentials of 'tok-user'", "image login"])
        // The right credentials get a token, and the pull goes through.
        let r = try pull(bearer.address + "/app:v1", ["--creds", "tok-user:tok-pass"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testBlobCorruptedInTheRegistry() throws {
        try pushRaw(layers: [try tarData([("etc/big", big)])], repo: "app", tag: "v1", on: registry)
        let layer = try layerDigest("app", "v1")
        let data = registry.blobData(layer)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: data))
        bytes[600] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: data))
        try pullFails(registry.address + "/app:v1", says: ["blob \(layer)", "digest mismatch"])
        // Shorter than the manifest says: truncated.
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: data))
        try pullFails(registry.address + "/app:v1", says: ["blob \(layer)", "truncated"])
    }

    /// A layer is complete only with its blob kept: when the blob cannot be landed (here a
    /// directory squats its name), the layer is not recorded either, so a `kill -9` between the
    /// two can never leave a layer that `save` and `push` cannot send.
    func testLayerNotCompleteWithoutItsBlob() throws {
        try pushRaw(layers: [try tarData([("etc/big", big)])], repo: "app", tag: "v1", on: registry)
        let layer = try layerDigest("app", "v1")
        let squatter = store + "/blobs/sha256/" + String(layer.dropFirst("sha256:".count))
        try FileManager.default.createDirectory(atPath: squatter, withIntermediateDirectories: true)
        try pullFails(registry.address + "/app:v1", says: ["cannot store blob \(layer)"])
        XCTAssertEqual(listDir(store + "/layers"), [], "a layer was recorded without its blob")
        try FileManager.default.removeItem(atPath: squatter)
        let r = try pull(registry.address + "/app:v1")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: squatter), "the blob is kept once the layer is")
    }

    func testPinnedManifestDigestMismatch() throws {
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "a", on: registry)
        let b = try pushRaw(layers: [try tarData([("b", "b")])], repo: "app", tag: "b", on: registry)
        let proxy = try startProxy("wrong-manifest", for: registry, arg: "a")
        try pullFails(proxy.address + "/app@" + b, says: ["not the \(b) asked for"])
    }

    func testTruncatedDownload() throws {
        try pushRaw(layers: [try tarData([("etc/big", big)])], repo: "app", tag: "v1", on: registry)
        let proxy = try startProxy("truncate", for: registry)
        try pullFails(proxy.address + "/app:v1", says: ["connection was closed", "after 2 attempts"])
    }

    /// The registry goes away while the third layer downloads: the two complete layers stay,
    /// no image is recorded, and a second pull fetches only the missing layer.
    func testRegistryGoneMidPullThenSecondPullFinishes() throws {
        let layers = try (1...3).map { i in try tarData([("layer\(i)/big", big + "\(i)")]) }
        try pushRaw(layers: layers, repo: "app", tag: "v1", on: registry)
        let third = try layerDigests("app", "v1")[2]
        let proxy = try startProxy("die", for: registry, arg: third)
        let r = try pull(proxy.address + "/app:v1", ["--parallel", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("blob \(third)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("pull again to finish"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count, 2)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/images"), [])

        let before = registry.blobGets().count
        let again = try pull(registry.address + "/app:v1")
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stderr.components(separatedBy: "Already exists").count - 1, 2, again.stderr)
        let fetched = registry.blobGets().dropFirst(before)
        XCTAssertEqual(fetched.count, 2, "config and the third layer only: \(Array(fetched))")
        XCTAssertTrue(fetched.contains("app " + third))
        let mnt = try mountImage(registry.address + "/app:v1")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/layer3/big", encoding: .utf8), big + "3")
        unmount(mnt)
    }

    func testManifestListWithoutThisPlatform() throws {
        let m = try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "arm", on: registry)
        let size = try curl(["-s", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                             "http://\(registry.address)/v2/app/manifests/arm"]).utf8.count
        try putManifest(["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": size,
                                        "platform": ["os": "linux", "architecture": "arm64"]] as [String: Any]]],
                        mediaType: "application/vnd.oci.image.index.v1+json", repo: "app", reference: "multi", on: registry)
        try pullFails(registry.address + "/app:multi", says: ["has no image for linux/amd64 (it has linux/arm64)", "--platform"])
        // Asked for, the platform is there.
        let r = try pull(registry.address + "/app:multi", ["--platform", "linux/arm64"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testUnsupportedMediaTypes() throws {
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "odd", layerType: "application/vnd.example.layer", on: registry)
        try pullFails(registry.address + "/app:odd", says: ["unsupported media type 'application/vnd.example.layer'"])
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "v1", on: registry)
        let proxy = try startProxy("mediatype", for: registry)
        try pullFails(proxy.address + "/app:v1", says: ["unsupported media type 'application/vnd.example.unknown+json'"])
    }

    func testHostileLayerPaths() throws {
        let outside = tmp + "/escaped"
        try pushRaw(layers: [try tarData([("ok", "fine"), ("../../../../../../\(outside.dropFirst())", "gotcha")])],
                    repo: "app", tag: "evil", on: registry)
        try pullFails(registry.address + "/app:evil", says: ["layer 1/1", "tar entry"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: outside))
    }

    func testGarbageAnswers() throws {
        try pushRaw(layers: [try tarData([("a", "a")])], repo: "app", tag: "v1", on: registry)
        let proxy = try startProxy("garbage", for: registry)
        try pullFails(proxy.address + "/app:v1", says: ["manifest of \(proxy.address)/app:v1 does not parse"])
        // Something that is not a registry at all.
        let notRegistry = try startProxy("forbidden", for: registry)
        notRegistry.stop()
        try pullFails(notRegistry.address + "/app:v1", says: ["cannot be reached"])
    }

    /// The layer digests of a manifest in the registry.
    func layerDigests(_ repo: String, _ tag: String) throws -> [String] {
        let text = try curl(["-H", "Accept: application/vnd.oci.image.manifest.v1+json", "http://\(registry.address)/v2/\(repo)/manifests/\(tag)"])
        let doc = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        return (doc["layers"] as! [[String: Any]]).map { $0["digest"] as! String }
    }

    func layerDigest(_ repo: String, _ tag: String) throws -> String { try layerDigests(repo, tag)[0] }
}

/// A directory's names, sorted; empty when it does not exist.
func listDir(_ path: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
