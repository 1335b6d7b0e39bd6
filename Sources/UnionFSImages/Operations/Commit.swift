import Foundation
import Glibc
import SystemPackage
import UnionFS

/// What `image commit` made.
public struct ImageCommitResult: Sendable {
    public var record: ImageRecord
    public var layer: CommitResult
}

extension ImageStore {
    /// Makes `newRef` from `from` plus the changes in `upper` (an upper dir over that image's
    /// layers) as one new layer on top, as `docker commit` does: the layer is written as a tar
    /// (compressed as asked), unpacked into the store as the next chain layer; the config gets
    /// its diffID and a history entry, the manifest its descriptor. Nothing in the result
    /// depends on the time, so the same upper gives the same digests.
    public func commit(upper: String, from: String, newRef: String, compression: LayerCompression = .gzip,
                       message: String? = nil, progress: ImageProgress? = nil) throws -> ImageCommitResult {
        let image = try stored(try resolve(from))
        let add = try StoreAddition(self)
        let chains = image.chainIDs
        let held = try useLayers(chains)
        defer { _ = held }
        let source = try UpperChanges(lowerdirs: chains.reversed().map(diffDir), upperdir: upper, xattrNamespace: xattrNamespace,
                                      owners: recordedOwners)
        let layerPath = add.staging + "/layer"
        let fd = try Files.io("cannot create '\(layerPath)'") { () throws(Errno) in
            try Sys.open(layerPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        }
        let written: CommitResult
        do {
            written = try LayerCommit(source).write(to: fd, compression: compression,
                                                    progress: progress.map { p in { p("writing layer", $0, $1) } })
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            throw UnionFSError("commit of '\(upper)' failed", wrapping: error)
        }
        let diffID = Digest(written.diffID)
        let expect = LayerExpectation(digest: written.digest.description, size: written.size, diffID: written.diffID.description)
        _ = try add.addLayer(blob: layerPath, expect: expect, parent: chains.last, diffID: diffID,
                             keepBlob: true, blobIsOurs: true, stage: "new layer", progress: progress)

        var history: [String: Any] = ["created_by": "unionfs-swift image commit"]
        if let message { history["comment"] = message }
        let configBytes = try Self.edit(image.configBytes, what: "config \(image.record.config)") { c in
            var rootfs = c["rootfs"] as? [String: Any] ?? ["type": "layers"]
            rootfs["diff_ids"] = image.diffIDs.map(\.description) + [diffID.description]
            c["rootfs"] = rootfs
            c["history"] = (c["history"] as? [Any] ?? []) + [history]
        }
        let configDigest = try add.stageDocument(configBytes)
        let docker = image.manifest.mediaType == MediaType.dockerManifest
        let layerType: String
        switch compression {
        case .none: layerType = docker ? "application/vnd.docker.image.rootfs.diff.tar" : MediaType.ociLayer
        case .gzip: layerType = docker ? MediaType.dockerLayer : MediaType.ociLayer + "+gzip"
        case .zstd: layerType = MediaType.ociLayer + "+zstd"
        }
        let manifestBytes = try Self.edit(image.manifestBytes, what: "manifest \(image.record.manifest)") { m in
            var config = m["config"] as? [String: Any] ?? [:]
            config["digest"] = configDigest.description
            config["size"] = configBytes.count
            m["config"] = config
            m["layers"] = (m["layers"] as? [Any] ?? []) + [["mediaType": layerType, "digest": written.digest.description,
                                                             "size": written.size] as [String: Any]]
        }
        let manifestDigest = try add.stageDocument(manifestBytes)
        let record = ImageRecord(name: normalizedName(newRef), manifest: manifestDigest, config: configDigest)
        try add.commit(records: [record])
        return ImageCommitResult(record: record, layer: written)
    }

    /// A JSON object changed by `body`, written back canonically.
    static func edit(_ bytes: [UInt8], what: String, _ body: (inout [String: Any]) -> Void) throws -> [UInt8] {
        guard var object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw UnionFSError("\(what) is not a JSON object")
        }
        body(&object)
        return try json(object)
    }
}
