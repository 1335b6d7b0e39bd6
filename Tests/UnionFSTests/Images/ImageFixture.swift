import Foundation
import Glibc
import XCTest

/// Images made offline for the image tests: a busybox rootfs imported into a podman storage of
/// the test's own (vfs driver, under the test's temp dir), derived images made with podman
/// create/mount/commit (no container is run), and hand-written OCI layouts for bad input.
class ImageTestCase: TempDirTestCase {
    var store = ""
    private var podmanRoot = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("image tests mount and unpack as root") }
        store = tmp + "/store"
        podmanRoot = tmp + "/podman"
    }

    static let podmanPath = "/usr/bin/podman"

    /// Runs podman on the test's own storage; skips the test when podman is missing.
    @discardableResult
    func podman(_ args: [String], root: String? = nil, timeout: TimeInterval = 60) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: Self.podmanPath) else { throw XCTSkip("podman is not installed") }
        let r = root ?? podmanRoot
        let full = ["--root", r + "/storage", "--runroot", try runroot(for: r), "--storage-driver", "vfs",
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"] + args
        let result = try Run.program(Self.podmanPath, full, timeout: timeout)
        guard result.status == 0, !result.timedOut else {
            throw WalkError(description: "podman \(args.joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private var runroots: [String: String] = [:]

    /// podman wants a runroot of at most 50 characters: a short temporary dir per storage root.
    private func runroot(for root: String) throws -> String {
        if let r = runroots[root] { return r }
        var template = Array("/tmp/ufs-run.XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw WalkError(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        let dir = String(cString: p)
        runroots[root] = dir
        addCleanup {
            // A container run may leave mounts (shm) below the runroot: never delete through them.
            for m in MountTable.entries().reversed() where m.mountPoint.hasPrefix(dir + "/") { MountTable.forceUnmount(m.mountPoint) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        return dir
    }

    /// `unionfs-swift image ARGS --store STORE`.
    @discardableResult
    func image(_ args: [String], timeout: TimeInterval = 60) throws -> ProcessResult {
        try Run.program(TestEnvironment.binary, ["image"] + args + ["--store", store], timeout: timeout)
    }

    /// The same, failing the test unless it succeeds; its standard output.
    @discardableResult
    func imageOK(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try image(args)
        XCTAssertEqual(r.status, 0, "image \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        return r.stdout
    }

    /// Runs a shell command line (fixtures only), failing on a non-zero exit.
    func shell(_ command: String) throws {
        let r = try Run.program("/bin/sh", ["-c", command], timeout: 60)
        guard r.status == 0 else { throw WalkError(description: "sh -c \(command): \(r.stderr)") }
    }

    /// A small rootfs: busybox with a few applet links, a text file, a nested dir, a file to
    /// delete later and a hard link.
    func makeRootfs(_ name: String) throws -> String {
        let root = try makeDir(name)
        try shell("""
        cd '\(root)' && mkdir -p bin etc usr/share/doc var/empty && cp /bin/busybox bin/ && \
        ln -s busybox bin/sh && ln -s busybox bin/cat && ln -s busybox bin/ls && \
        echo hello > etc/greeting && echo old > etc/removeme && echo doc > usr/share/doc/README && \
        ln usr/share/doc/README usr/share/doc/README.link && chmod 0600 etc/greeting
        """)
        return root
    }

    /// A tar of a directory's contents.
    func tar(_ dir: String, to path: String) throws -> String {
        try shell("tar -C '\(dir)' -cf '\(path)' .")
        return path
    }

    /// `localhost/base:latest` in the test's podman storage, from `makeRootfs`.
    func makeBaseImage(_ name: String = "localhost/base:latest") throws {
        let rootfs = try makeRootfs("rootfs-" + name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "_"))
        try podman(["import", try tar(rootfs, to: rootfs + ".tar"), name])
    }

    /// `derived` from `base`, one layer more, made without running anything: a container is
    /// created, its rootfs changed through `podman mount` (a file added, one deleted, one
    /// changed, a dir replaced), then committed.
    func makeDerivedImage(from base: String, as derived: String) throws {
        let ctr = try podman(["create", base, "/bin/sh"])
        let dir = try podman(["mount", ctr])
        try shell("""
        cd '\(dir)' && echo new > etc/added && rm etc/removeme && echo changed > etc/greeting && \
        rm -r usr/share/doc && mkdir -p usr/share/doc && echo fresh > usr/share/doc/NEW
        """)
        try podman(["unmount", ctr])
        try podman(["commit", ctr, derived])
        try podman(["rm", ctr])
    }

    /// Saves a podman image in `format` (oci-archive or docker-archive).
    func podmanSave(_ name: String, format: String) throws -> String {
        let out = tmp + "/" + name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "_") + "." + format + ".tar"
        try podman(["save", "--format", format, "-o", out, name])
        return out
    }

    /// What podman shows as the image's root filesystem.
    func podmanTree(_ name: String, root: String? = nil) throws -> TreeSnapshot {
        let dir = try podman(["image", "mount", name], root: root)
        defer { _ = try? podman(["image", "unmount", name], root: root) }
        return try TreeSnapshot.walk(dir)
    }

    /// Mounts an image with `image mount` (daemonized) and registers its unmount.
    func mountImage(_ ref: String, _ extra: [String] = [], name: String = "mnt") throws -> String {
        let mnt = try makeDir(name)
        addCleanup { MountTable.forceUnmount(mnt) }
        let r = try image(["mount"] + extra + [ref, mnt], timeout: 60)
        guard r.status == 0 else { throw WalkError(description: "image mount \(ref): \(r.stderr)") }
        XCTAssertTrue(MountTable.isMounted(mnt, fsTypePrefix: "fuse"))
        return mnt
    }

    func unmount(_ path: String) {
        MountTable.forceUnmount(path)
        XCTAssertFalse(MountTable.isMounted(path))
    }

    /// The store's layers, blobs and image records: what must not change on a failed load.
    func storeContents() -> [String] {
        ["layers", "blobs/sha256", "images"].flatMap { sub in
            ((try? FileManager.default.contentsOfDirectory(atPath: store + "/" + sub)) ?? []).map { sub + "/" + $0 }
        }.sorted()
    }

    /// The hex sha256 of a file.
    func sha256(_ path: String) throws -> String {
        let r = try Run.program("/usr/bin/sha256sum", [path], timeout: 30)
        return String(r.stdout.prefix(64))
    }

    /// Writes an OCI layout by hand: one image of `layers` (tar files), with `edit` free to
    /// spoil the manifest JSON (as a dictionary) before it is written.
    func writeLayout(_ dir: String, layers: [String], diffIDs: [String]? = nil,
                     edit: (inout [String: Any]) -> Void = { _ in }) throws {
        try FileManager.default.createDirectory(atPath: dir + "/blobs/sha256", withIntermediateDirectories: true)
        func put(_ data: Data) throws -> (String, Int) {
            let p = dir + "/blob.tmp"
            try data.write(to: URL(fileURLWithPath: p))
            let hex = try sha256(p)
            try? FileManager.default.removeItem(atPath: dir + "/blobs/sha256/" + hex)
            try FileManager.default.moveItem(atPath: p, toPath: dir + "/blobs/sha256/" + hex)
            return ("sha256:" + hex, data.count)
        }
        var descriptors: [[String: Any]] = []
        var diffs: [String] = []
        for l in layers {
            let data = try Data(contentsOf: URL(fileURLWithPath: l))
            let (d, n) = try put(data)
            descriptors.append(["mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n])
            diffs.append(d)
        }
        let config: [String: Any] = ["architecture": "amd64", "os": "linux",
                                     "rootfs": ["type": "layers", "diff_ids": diffIDs ?? diffs]]
        let configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        let (cd, cn) = try put(configData)
        var manifest: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn],
                                       "layers": descriptors]
        edit(&manifest)
        let (md, mn) = try put(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]))
        let index: [String: Any] = ["schemaVersion": 2, "manifests": [["mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                                        "digest": md, "size": mn,
                                                                        "annotations": ["org.opencontainers.image.ref.name": "localhost/hand:latest"]]]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/index.json"))
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/oci-layout"))
    }
}
