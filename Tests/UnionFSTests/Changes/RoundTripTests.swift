import Foundation
import UnionFS
import XCTest

/// Commit an upper written by kernel overlayfs, apply the tar back, and compare with the
/// kernel's merged view; determinism of the bytes and the digests.
final class ChangesRoundTripTests: ChangesTestCase {
    let lowerScript = """
        mkdir -p d/sub e gone; echo a > d/a; echo b > d/b; echo s > d/sub/s; echo e > e/e
        echo g > gone/g; echo f > file; echo x > x; mkdir y; echo y > y/y; ln -s file link
        """
    let opsScript = """
        rm d/a; echo changed >> d/b; rm -rf e; mkdir e; echo new > e/new
        rm -rf gone; rm x; mkdir x; echo in > x/in; rm -rf y; echo now-a-file > y
        chmod 600 file; ln file hard; mkdir -p n/m; echo deep > n/m/deep; mv d/sub d/moved
        python3 -c "import os; os.setxattr('file', 'user.note', b'kept')"
        rm link; ln -s elsewhere link
        """

    /// Mounts (kernel overlayfs, or unionfs-swift with `ours`), runs the operations, and commits
    /// the upper to `tar`.
    func committed(_ lower: String, tar: String, compression: LayerCompression = .none,
                   ours: Bool = false) throws -> (merged: String, result: CommitResult) {
        try sh(lowerScript, in: lower)
        let (merged, upper) = ours ? try fuseMount(lowers: [lower]) : try kernelMount(lowers: [lower])
        try sh(opsScript, in: merged)
        let fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let result = try LayerCommit(UpperChanges(lowerdirs: [lower], upperdir: upper)).write(to: fd, compression: compression)
        return (merged, result)
    }

    func testFlattenOntoCopyOfLowersGivesMergedTree() throws {
        let lower = try dir("lower"), tar = root + "/layer.tar"
        let (merged, _) = try committed(lower, tar: tar)
        try sh("cp -a lower flat")
        let result = try LayerApply.apply(tar: tar, to: root + "/flat", mode: .flatten)
        XCTAssertGreaterThan(result.entries, 10)
        XCTAssertEqual(try TreeComparison.changes(from: PlainDirectory(path: merged), to: PlainDirectory(path: root + "/flat")).map(\.description), [])
        XCTAssertEqual(try sh("getfattr --only-values -n user.note flat/file"), "kept")
        XCTAssertEqual(try sh("stat -c %i flat/file"), try sh("stat -c %i flat/hard"), "hard link kept as a link")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/flat/e/e"), "opaque dir emptied of lower content")
    }

    func testApplyAsNewLowerLayerGivesMergedTree() throws {
        let lower = try dir("lower"), tar = root + "/layer.tar.zst"
        let (merged, _) = try committed(lower, tar: tar, compression: .zstd)
        _ = try LayerApply.apply(tar: tar, to: root + "/layer2", mode: .layer(.trusted))
        let view = try UnionView(LayerStackConfiguration(lowerdirs: [root + "/layer2", lower], ociWhiteouts: false))
        XCTAssertEqual(try TreeComparison.changes(from: PlainDirectory(path: merged), to: MergedDirectory(root: view.stack)).map(\.description), [])
        // The layer is in the kernel's own form: 0:0 whiteouts and the opaque xattr.
        XCTAssertEqual(try sh("stat -c '%F %t:%T' layer2/d/a"), "character special file 0:0\n")
        XCTAssertEqual(try sh("getfattr --only-values -n trusted.overlay.opaque layer2/e"), "y")
        XCTAssertEqual(try sh("ls -A layer2 | grep -c '^.wh.' || true"), "0\n")
    }

    /// The upper of this project's own mount, committed and applied as a new lower layer, then
    /// mounted for real by kernel overlayfs and by unionfs-swift: both show the original tree.
    func testOwnUpperCommittedAndMountedAsLayerGivesMergedTree() throws {
        let lower = try dir("lower"), tar = root + "/layer.tar.gz"
        let (merged, _) = try committed(lower, tar: tar, compression: .gzip, ours: true)
        _ = try LayerApply.apply(tar: tar, to: root + "/layer2", mode: .layer(.trusted))
        for (kind, mount) in [("kernel", kernelMount), ("unionfs-swift", fuseMount)] {
            let (again, _) = try mount([root + "/layer2", lower], "again-" + kind)
            XCTAssertEqual(try TreeComparison.changes(from: PlainDirectory(path: merged), to: PlainDirectory(path: again))
                .map(\.description), [], kind)
            XCTAssertEqual(try snapshot(again), try snapshot(merged), kind)
            unmount(again)
        }
    }

    func testCommitTwiceGivesIdenticalBytesAndDigests() throws {
        let lower = try dir("lower")
        try sh(lowerScript, in: lower)
        let (merged, upper) = try kernelMount(lowers: [lower])
        try sh(opsScript, in: merged)
        for compression in LayerCompression.allCases {
            var outputs: [[UInt8]] = []
            var results: [CommitResult] = []
            for i in 0..<2 {
                let path = root + "/out-\(compression)-\(i)"
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                results.append(try LayerCommit(UpperChanges(lowerdirs: [lower], upperdir: upper)).write(to: fd, compression: compression))
                close(fd)
                outputs.append(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            }
            XCTAssertEqual(outputs[0], outputs[1], "\(compression) bytes")
            XCTAssertEqual(results[0], results[1])
            let path = root + "/out-\(compression)-0"
            let fileSum = try sh("sha256sum \(path) | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(results[0].digest.description, "sha256:" + fileSum)
            XCTAssertEqual(results[0].size, Int64(outputs[0].count))
            switch compression {
            case .none: XCTAssertEqual(results[0].diffID, results[0].digest)
            case .gzip:
                let tarSum = try sh("gzip -dc \(path) | sha256sum | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
                XCTAssertEqual(results[0].diffID.description, "sha256:" + tarSum)
                XCTAssertNotEqual(results[0].diffID, results[0].digest)
            case .zstd:
                XCTAssertEqual(Array(outputs[0].prefix(4)), [0x28, 0xb5, 0x2f, 0xfd], "zstd magic")
                XCTAssertNotEqual(results[0].diffID, results[0].digest)
            }
        }
    }

    func testCommittedTarIsOCIForm() throws {
        let lower = try dir("lower"), tar = root + "/layer.tar"
        _ = try committed(lower, tar: tar)
        let listing = try sh("""
            python3 - <<'PY'
            import tarfile
            for m in tarfile.open('layer.tar'):
                kind = 'L' if m.islnk() else ('D' if m.isdir() else ('S' if m.issym() else 'F'))
                extra = ' ->' + m.linkname if m.linkname else ''
                bad = [k for k in m.pax_headers if 'overlay' in k]
                print(kind, m.name + extra, 'BADXATTR' if bad else '')
            PY
            """)
        let lines = listing.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        XCTAssertTrue(lines.contains("F d/.wh.a"), listing)
        XCTAssertTrue(lines.contains("F .wh.gone"), listing)
        let e = lines.firstIndex(of: "D e"), opq = lines.firstIndex(of: "F e/.wh..wh..opq")
        XCTAssertNotNil(e, listing)
        XCTAssertEqual(opq, e.map { $0 + 1 }, "opaque marker right after its directory")
        XCTAssertTrue(lines.contains("L hard ->file") || lines.contains("L file ->hard"), listing)
        XCTAssertFalse(listing.contains("BADXATTR"), "no overlay xattrs exported")
        XCTAssertFalse(lines.contains { $0.contains("n/.wh..wh..opq") }, "a new dir hides nothing: no marker")
        XCTAssertEqual(lines.filter { $0.hasPrefix("D") }.map { $0 }, lines.filter { $0.hasPrefix("D") }.sorted(), "sorted order")
    }
}
