import Glibc
import SystemPackage
import UnionFS

extension ImageStore {
    /// Writes an image's flattened root filesystem as one tar, as `docker export` does: each
    /// layer blob applied (checked) in order onto a scratch tree in the store, which is then
    /// written as a tar in the deterministic commit order.
    public func export(_ ref: String, to out: String, progress: ImageProgress? = nil) throws {
        let image = try stored(try resolve(ref))
        // Shared: prune (exclusive) must not clear this staging while it is in use.
        let lock = try storeLock(exclusive: false)
        defer { lock.release() }
        let staging = try Files.makeTemporaryDirectory(in: tmp, prefix: "export")
        defer { try? Files.removeTree(staging) }
        let flat = staging + "/rootfs"
        let empty = staging + "/empty"
        try Files.io("cannot create '\(empty)'") { () throws(Errno) in try Sys.mkdir(empty, 0o755) }
        for (i, (l, diff)) in zip(image.manifest.layers, image.diffIDs).enumerated() {
            let d = try Digest.parse(l.digest, what: "manifest \(image.record.manifest)")
            let stage = "layer \(i + 1)/\(image.diffIDs.count)"
            do {
                _ = try LayerApply.apply(tar: blobPath(d), to: flat, mode: .flatten,
                                         expect: LayerExpectation(digest: d.description, diffID: diff.description),
                                         progress: progress.map { p in { p(stage, $0, $1) } })
            } catch { throw UnionFSError("\(stage)", wrapping: error) }
        }
        if !Files.exists(flat) { try Files.io("cannot create '\(flat)'") { () throws(Errno) in try Sys.mkdir(flat, 0o755) } }
        // Flattened without root, the tree keeps owners as the store's layers do.
        let owners: OwnerRecords = geteuid() == 0 ? .files : .overrideXattr(uid: geteuid(), gid: getegid())
        let source = try UpperChanges(lowerdirs: [empty], upperdir: flat, xattrNamespace: xattrNamespace, owners: owners)
        let partial = out + ".partial-\(getpid())"
        let fd = try Files.io("cannot create '\(partial)'") { () throws(Errno) in
            try Sys.open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        do {
            _ = try LayerCommit(source).write(to: fd, progress: progress.map { p in { p("exporting", $0, $1) } })
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            try? Sys.unlink(partial)
            throw UnionFSError("export to '\(out)' failed", wrapping: error)
        }
        do { try Sys.rename(partial, to: out) } catch {
            try? Sys.unlink(partial)
            throw UnionFSError.io(error, "cannot rename '\(partial)' to '\(out)': \(error)")
        }
    }

    /// Makes a one-layer image `ref` from a root filesystem tar (plain or compressed), as
    /// `docker import` does.
    public func importRootfs(_ tarPath: String, as ref: String, platform: String? = nil,
                             progress: ImageProgress? = nil) throws -> ImageRecord {
        let add = try StoreAddition(self)
        progress?("reading", 0, 0)
        let digests = try LayerBlob.check(path: tarPath)
        let diffID = Digest(digests.diffID)
        let expect = LayerExpectation(digest: digests.digest.description, size: digests.size, diffID: diffID.description)
        _ = try add.addLayer(blob: tarPath, expect: expect, parent: nil, diffID: diffID, keepBlob: true,
                             blobIsOurs: false, stage: "layer", progress: progress)
        let p = try platform.map(Platform.parse) ?? Platform.host
        var config: [String: Any] = [
            "architecture": p.architecture, "os": p.os, "config": [String: Any](),
            "rootfs": ["type": "layers", "diff_ids": [diffID.description]] as [String: Any],
            "history": [["created_by": "unionfs-swift image import"]],
        ]
        if let v = p.variant { config["variant"] = v }
        let configBytes = try Self.json(config)
        let configDigest = try add.stageDocument(configBytes)
        let manifestBytes = try Self.json([
            "schemaVersion": 2, "mediaType": MediaType.ociManifest,
            "config": ["mediaType": MediaType.ociConfig, "digest": configDigest.description, "size": configBytes.count] as [String: Any],
            "layers": [["mediaType": MediaType.layer(sniffing: Self.magic(tarPath)), "digest": digests.digest.description,
                        "size": digests.size] as [String: Any]],
        ])
        let record = ImageRecord(name: normalizedName(ref), manifest: try add.stageDocument(manifestBytes), config: configDigest)
        try add.commit(records: [record])
        return record
    }
}
