import Glibc
import UnionFS

/// An image as `image ls` shows it.
public struct ImageSummary: Sendable {
    public var name: String?
    public var id: Digest
    public var manifest: Digest
    public var layers: Int
    /// Unpacked data bytes of its layers.
    public var size: Int64
}

/// A layer as `image ls --layers` shows it.
public struct LayerSummary: Sendable {
    public var chainID: Digest
    public var diffID: Digest
    public var size: Int64
    /// How many image records use it.
    public var images: Int
}

/// What `prune` removed.
public struct PruneResult: Sendable {
    public var layers: Int
    public var blobs: Int
    public var bytes: Int64
}

extension ImageStore {
    public func list() throws -> [ImageSummary] {
        try records().map { r in
            let image = try stored(r)
            let size = image.chainIDs.reduce(Int64(0)) { $0 + (layerRecord($1)?.size ?? 0) }
            return ImageSummary(name: r.name, id: r.config, manifest: r.manifest, layers: image.diffIDs.count, size: size)
        }.sorted { ($0.name ?? "~") < ($1.name ?? "~") }
    }

    public func listLayers() throws -> [LayerSummary] {
        var users: [Digest: Int] = [:]
        for r in records() { for c in (try? stored(r))?.chainIDs ?? [] { users[c, default: 0] += 1 } }
        return allLayers().compactMap { c in
            layerRecord(c).map { LayerSummary(chainID: c, diffID: $0.diffID, size: $0.size, images: users[c] ?? 0) }
        }
    }

    /// Removes an image record (the layers stay until `prune`). Returns the removed record.
    @discardableResult
    public func remove(_ ref: String) throws -> ImageRecord {
        let lock = try storeLock(exclusive: true)
        defer { lock.release() }
        let r = try resolve(ref)
        try removeRecord(r)
        return r
    }

    /// The lower dirs of an image, top layer first, with shared locks held on them while the
    /// returned locks live (a mount keeps them for its lifetime, so prune leaves them alone).
    /// Layers (and images) of the additional stores are used in place, without a lock.
    public func lowerdirs(_ ref: String) throws -> (dirs: [String], locks: [AnyObject]) {
        let (home, record) = try locate(ref)
        let image = try home.stored(record)
        let chains = image.chainIDs
        guard !chains.isEmpty else { throw UnionFSError("image '\(ref)' has no layers") }
        var locks: [FileLock] = []
        var dirs: [String] = []
        for c in chains {
            let holder = self.holder(of: c) ?? self
            locks += try holder.useLayers([c])
            dirs.append(holder.diffDir(c))
        }
        return (dirs.reversed(), locks)
    }

    /// Removes layers no image uses and no mount holds, blobs no image names, and staging
    /// left by killed processes.
    public func prune() throws -> PruneResult {
        let lock = try storeLock(exclusive: true)
        defer { lock.release() }
        var usedLayers = Set<Digest>()
        var usedBlobs = Set<Digest>()
        for r in records() {
            let image = try stored(r)
            usedLayers.formUnion(image.chainIDs)
            usedBlobs.insert(r.manifest)
            usedBlobs.insert(r.config)
            for l in image.manifest.layers { if let d = Digest(l.digest) { usedBlobs.insert(d) } }
        }
        var result = PruneResult(layers: 0, blobs: 0, bytes: 0)
        for c in allLayers() where !usedLayers.contains(c) {
            // A mount or an unfinished load holds the lock: leave the layer to them.
            guard let l = try FileLock(layerLockPath(c), exclusive: true, wait: false) else { continue }
            result.bytes += Files.treeSize(layerDir(c))
            try Files.removeTree(layerDir(c))
            l.release()
            result.layers += 1
        }
        for name in Files.list(root + "/blobs/sha256") {
            guard let d = Digest("sha256:" + name), !usedBlobs.contains(d) else { continue }
            result.bytes += Files.size(blobPath(d)) ?? 0
            try? Sys.unlink(blobPath(d))
            result.blobs += 1
        }
        // Staging of operations that died (their store lock is gone: we hold it exclusively).
        for name in Files.list(tmp) { try Files.removeTree(tmp + "/" + name) }
        return result
    }
}
