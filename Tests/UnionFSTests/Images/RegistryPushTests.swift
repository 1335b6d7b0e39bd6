import Foundation
import Glibc
import XCTest

/// `image push`: a committed image goes to the registry without an archive, only missing
/// blobs are sent (the base mounted from the repository it came from), and podman pulls it.
final class RegistryPushTests: RegistryTestCase {
    func testCommittedImagePushesAndPodmanSeesTheChange() throws {
        let registry = try startRegistry()
        try makeBaseImage()
        try podmanPush("localhost/base:latest", to: registry, as: "base:latest")
        let base = registry.address + "/base:latest"
        XCTAssertEqual(try pull(base).status, 0)

        // A change made through a writable mount, committed as one new layer.
        let upper = tmp + "/upper"
        let mnt = try mountImage(base, ["--writable", "--upper", upper])
        try "pushed by unionfs\n".write(toFile: mnt + "/etc/pushed", atomically: false, encoding: .utf8)
        XCTAssertEqual(unlink(mnt + "/etc/removeme"), 0)
        unmount(mnt)
        let committed = registry.address + "/committed:v1"
        try imageOK(["commit", "--upper", upper, "--from", base, committed])

        let r = try image(["push", "--tls-verify=false", committed])
        XCTAssertEqual(r.status, 0, r.stderr)
        let digest = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(digest.hasPrefix("sha256:") && digest.count == 71, r.stdout)
        XCTAssertTrue(r.stderr.contains("mounted from base"), "the base layer is mounted, not uploaded: \(r.stderr)")
        XCTAssertEqual(registry.logLines(containing: "mount=").filter { $0.contains("\" 201 ") }.count, 1)
        let head = try curl(["-I", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
                             "http://\(registry.address)/v2/committed/manifests/v1"])
        XCTAssertTrue(head.lowercased().contains("docker-content-digest: " + digest), head)

        // Again: the registry has every blob.
        let again = try image(["push", "--tls-verify=false", committed])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stderr.components(separatedBy: "Already exists").count - 1, 3, again.stderr)

        // podman pulls it into a storage of its own, sees the change and runs it.
        let other = tmp + "/podman-other"
        try podman(["pull", "--tls-verify=false", "docker://" + committed], root: other)
        let tree = try podmanTree(committed, root: other)
        XCTAssertNotNil(tree.entries["etc/pushed"])
        XCTAssertNil(tree.entries["etc/removeme"])
        // And runs it (with limits this machine allows: podman's 1M default open files exceed them).
        let out = try podman(["run", "--rm", "--net=none"] + PodmanStore.containerLimits + [committed, "/bin/cat", "/etc/pushed"],
                             root: other, timeout: 60)
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "pushed by unionfs")
    }
}
