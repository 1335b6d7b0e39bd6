import Foundation
import Glibc
import XCTest

/// `image pull` from a real registry (docker-registry) of images podman pushed.
final class RegistryPullTests: RegistryTestCase {
    /// podman pushes a base and a derived image; `image pull` then `image mount` shows podman's
    /// tree for each; the derived image fetches only its own layer (the registry's access log
    /// shows no GET of the base layer the second time), and says the base layer exists.
    func testPodmanPushedImagesPullMountAndShareTheBase() throws {
        let registry = try startRegistry()
        try makeBaseImage()
        try makeDerivedImage(from: "localhost/base:latest", as: "localhost/derived:latest")
        try podmanPush("localhost/base:latest", to: registry, as: "base:latest")
        try podmanPush("localhost/derived:latest", to: registry, as: "derived:latest")

        let base = registry.address + "/base:latest"
        let r = try pull(base)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: " ").prefix(3).joined(separator: " "), "Pulled image: \(base)", r.stdout)
        XCTAssertTrue(r.stderr.contains("layer 1/1"), "one line per layer when not on a terminal: \(r.stderr)")
        let mnt = try mountImage(base)
        XCTAssertTreesEqual(try TreeSnapshot.walk(mnt), try podmanTree("localhost/base:latest"), ignoringDirectorySize: true)
        unmount(mnt)

        let before = registry.blobGets()
        let d = try pull(registry.address + "/derived")
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertTrue(d.stderr.contains("layer 1/2") && d.stderr.contains("Already exists"), d.stderr)
        let fetched = Array(registry.blobGets().dropFirst(before.count))
        // The config and the top layer: two blob GETs, both from derived, none of the base layer.
        XCTAssertEqual(fetched.count, 2, "\(fetched)")
        XCTAssertTrue(fetched.allSatisfy { $0.hasPrefix("derived ") }, "\(fetched)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count, 2)
        let mnt2 = try mountImage(registry.address + "/derived:latest", name: "mnt2")
        XCTAssertTreesEqual(try TreeSnapshot.walk(mnt2), try podmanTree("localhost/derived:latest"), ignoringDirectorySize: true)
        unmount(mnt2)

        // By digest: the manifest is checked against the pin; --json gives events.
        let manifest = try curl(["-I", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
                                 "http://\(registry.address)/v2/derived/manifests/latest"])
        let pinned = manifest.split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }!
            .split(separator: " ").last.map(String.init)!
        let j = try pull(registry.address + "/derived@" + pinned, ["--json"])
        XCTAssertEqual(j.status, 0, j.stderr)
        let events = j.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(events.first?["event"] as? String, "resolved", j.stdout)
        XCTAssertEqual(events.first?["manifest"] as? String, pinned)
        XCTAssertEqual(events.filter { $0["event"] as? String == "exists" }.count, 2, j.stdout)
        XCTAssertEqual(events.last?["event"] as? String, "finished", j.stdout)
        XCTAssertTrue(try imageOK(["ls"]).contains(registry.address + "/derived@" + pinned))
    }

    /// A blob whose answer is cut in half resumes with a Range request and the pull succeeds.
    func testDroppedConnectionResumesWithRange() throws {
        let registry = try startRegistry()
        let big = String(repeating: "0123456789abcdef", count: 8192)
        try pushRaw(layers: [try tarData([("etc/big", big), ("etc/small", "small\n")])], repo: "app", tag: "v1", on: registry)
        let proxy = try startProxy("truncate-once", for: registry)
        let r = try pull(proxy.address + "/app:v1")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("retrying (1)"), r.stderr)
        XCTAssertEqual(registry.logLines(containing: "\" 206 ").count, 1, "the second request asked for the rest only")
        let mnt = try mountImage(proxy.address + "/app:v1")
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/big", encoding: .utf8), big)
        unmount(mnt)
    }
}
