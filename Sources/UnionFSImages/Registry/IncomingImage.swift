import Foundation
import Glibc
import UnionFS

/// An image arriving from a registry: its manifest and config are in hand (checked against
/// their digests by the caller, and here against each other), its layers arrive one byte
/// stream each (`LayerReceiver`), several at once.
///
/// Unlike `load`, a failed pull keeps every layer it completed: each was checked against its
/// digests before it landed, so the next pull of the same image (or of another image sharing
/// it) starts from there; `prune` removes the ones no image comes to use. The image record is
/// written last, once every layer is in.
public final class IncomingImage: @unchecked Sendable {
    /// One layer the manifest lists.
    public struct Layer: Sendable {
        public let index: Int
        public let digest: Digest
        public let size: Int64
        public let diffID: Digest
        public let chain: Digest
        public let mediaType: String
        let parent: Digest?
    }

    public let store: ImageStore
    public let manifestDigest: Digest
    public let configDigest: Digest
    public let layers: [Layer]
    let manifestBytes: [UInt8]
    let configBytes: [UInt8]
    /// Staging for this pull's blobs as they arrive (same filesystem as the blobs).
    let staging: String
    private let storeLock: FileLock
    /// Guards `held` only (taken with no other lock held, never held while waiting).
    private let mutex = NSLock()
    /// Shared locks on the layers this image uses, held until its record is written.
    private var held: [FileLock] = []

    /// Checks the documents against each other (config digest and size, one diffID per layer,
    /// layer media types and sizes) and opens the store for adding.
    public init(store: ImageStore, manifestBytes: [UInt8], configBytes: [UInt8], what: String) throws {
        self.store = store
        self.manifestBytes = manifestBytes
        self.configBytes = configBytes
        manifestDigest = Digest.of(manifestBytes)
        let manifest = try decode(ImageManifest.self, manifestBytes, what: what)
        configDigest = try Digest.parse(manifest.config.digest, what: "\(what) config")
        guard Digest.of(configBytes) == configDigest, Int64(configBytes.count) == manifest.config.size else {
            throw UnionFSError("config \(configDigest): the registry sent \(configBytes.count) bytes with digest \(Digest.of(configBytes)), the manifest says \(manifest.config.size) bytes")
        }
        let config = try decode(ConfigSummary.self, configBytes, what: "config \(configDigest)")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw UnionFSError("\(what): \(manifest.layers.count) layers but its config lists \(config.rootfs.diff_ids.count) diff_ids")
        }
        var out: [Layer] = []
        var parent: Digest? = nil
        for (i, (l, diff)) in zip(manifest.layers, config.rootfs.diff_ids).enumerated() {
            let d = try Digest.parse(l.digest, what: "\(what) layer \(i + 1)")
            let type = l.mediaType ?? ""
            guard MediaType.isLayer(type) else { throw UnionFSError("layer \(d): unsupported media type '\(type)'") }
            guard l.size >= 0, l.size <= ImageSource.layerLimit else { throw UnionFSError("layer \(d): absurd size \(l.size)") }
            let diffID = try Digest.parse(diff, what: "config \(configDigest) diff_ids")
            let chain = Digest.chain(parent: parent, diffID: diffID)
            out.append(Layer(index: i, digest: d, size: l.size, diffID: diffID, chain: chain, mediaType: type, parent: parent))
            parent = chain
        }
        layers = out
        storeLock = try store.storeLock(exclusive: false)
        staging = try Files.makeTemporaryDirectory(in: store.tmp, prefix: "pull")
    }

    deinit { close() }

    /// Removes this pull's staging and lets its layers go: call once no layer is arriving any
    /// more (a command may exit before the last reference goes, so this is not left to deinit).
    public func close() {
        try? Files.removeTree(staging)
        mutex.lock()
        held.removeAll()
        mutex.unlock()
    }

    /// Whether the store (or an additional store) has the layer already.
    public func isPresent(_ l: Layer) -> Bool { store.hasLayer(l.chain) }

    /// Starts receiving a layer's blob; nil when the store has the layer (perhaps unpacked by
    /// another process meanwhile: this waits for its lock).
    public func receive(_ l: Layer) throws -> LayerReceiver? {
        if store.holder(of: l.chain) !== store && store.hasLayer(l.chain) { return nil }  // an additional store's
        var lock = try FileLock(store.layerLockPath(l.chain), exclusive: false)!
        if store.isComplete(l.chain) { keep(lock); return nil }
        lock.release()
        lock = try FileLock(store.layerLockPath(l.chain), exclusive: true)!
        if store.isComplete(l.chain) { lock.downgrade(); keep(lock); return nil }
        return try LayerReceiver(image: self, layer: l, lock: lock)
    }

    func keep(_ lock: FileLock) {
        mutex.lock()
        held.append(lock)
        mutex.unlock()
    }

    /// Writes the manifest, config and image records once every layer is in.
    public func finish(names: [String]) throws -> [ImageRecord] {
        for l in layers where !store.hasLayer(l.chain) {
            throw UnionFSError("layer \(l.index + 1) (\(l.digest)) did not arrive")
        }
        _ = try store.putBlob(configBytes)
        _ = try store.putBlob(manifestBytes)
        var records: [ImageRecord] = []
        if names.isEmpty { records.append(ImageRecord(name: nil, manifest: manifestDigest, config: configDigest)) }
        for n in Set(names.map(normalizedName)).sorted() {
            records.append(ImageRecord(name: n, manifest: manifestDigest, config: configDigest))
        }
        for r in records { try store.putRecord(r) }
        mutex.lock()
        held.removeAll()
        mutex.unlock()
        return records
    }
}
