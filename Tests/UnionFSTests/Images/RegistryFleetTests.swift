import Foundation
import Glibc
import XCTest

/// Stores shared read-only: mounting from a store on a read-only filesystem, and pulling into
/// a store of one's own over a read-only additional store.
final class RegistryFleetTests: RegistryTestCase {
    func testReadOnlyStoreAndAdditionalStore() throws {
        let registry = try startRegistry()
        let layers = try (1...2).map { i in try tarData([("data/file\(i)", "layer \(i)\n")]) }
        try pushRaw(layers: layers, repo: "app", tag: "v1", on: registry)
        let ref = registry.address + "/app:v1"
        XCTAssertEqual(try pull(ref).status, 0)

        // The store as a fleet machine sees an NFS export: a read-only bind mount.
        let shared = try makeDir("shared")
        XCTAssertEqual(try Run.program("/bin/mount", ["--bind", store, shared]).status, 0)
        addCleanup { MountTable.forceUnmount(shared) }
        XCTAssertEqual(try Run.program("/bin/mount", ["-o", "remount,bind,ro", shared]).status, 0)
        let mnt = try makeDir("mnt")
        addCleanup { MountTable.forceUnmount(mnt) }
        let r = try Run.program(TestEnvironment.binary, ["image", "mount", "--store", shared, ref, mnt], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: mnt + "/data/file2", encoding: .utf8), "layer 2\n")
        MountTable.forceUnmount(mnt)
        // Adding to it is refused with the reason.
        let refused = try Run.program(TestEnvironment.binary, ["image", "pull", "--store", shared, "--tls-verify=false", ref], timeout: 30)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("is read-only"), refused.stderr)

        // A machine's own store over the shared one: nothing fetched, the image mounts.
        let own = tmp + "/own-store"
        let before = registry.blobGets().count
        let p = try Run.program(TestEnvironment.binary, ["image", "pull", "--store", own, "--additional-store", shared,
                                                          "--tls-verify=false", ref], timeout: 30)
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(p.stderr.components(separatedBy: "Already exists").count - 1, 2, p.stderr)
        XCTAssertEqual(registry.blobGets().count - before, 1, "the config only")
        XCTAssertEqual(listDir(own + "/layers"), [])
        let m = try Run.program(TestEnvironment.binary, ["image", "mount", "--store", own, "--additional-store", shared, ref, mnt], timeout: 30)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertEqual(try String(contentsOfFile: mnt + "/data/file1", encoding: .utf8), "layer 1\n")
        MountTable.forceUnmount(mnt)
    }
}
