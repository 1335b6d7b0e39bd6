import Foundation
import Glibc
import SystemPackage
import UnionFS

/// Progress of a long image operation: what it is doing ("layer 2/5"), entries and data bytes
/// so far. Called often; the command line rate-limits what it shows.
public typealias ImageProgress = (_ stage: String, _ entries: Int, _ bytes: Int64) -> Void

/// The layers and blobs one operation (load, commit, import) has added so far, so that a
/// failure can take them back and a success can land the blobs and keep its layers in use
/// until the image records are written.
final class StoreAddition {
    let store: ImageStore
    let staging: String
    private let storeLock: FileLock
    private(set) var locks: [FileLock] = []
    private var created: [Digest] = []
    private var stagedBlobs: [(String, Digest)] = []
    private var finished = false

    init(_ store: ImageStore) throws {
        self.store = store
        storeLock = try store.storeLock(exclusive: false)
        staging = try Files.makeTemporaryDirectory(in: store.tmp, prefix: "add")
    }

    deinit {
        if !finished { rollBack() }
        try? Files.removeTree(staging)
    }

    /// Makes sure the layer `diffID` over `parent` is unpacked, reading `blob` (checked against
    /// `expect`) when it is not; keeps the blob when `keepBlob` (as a hard link when `blobIsOurs`,
    /// the blob being a file of this operation's staging, else as a checked copy). Returns the
    /// chain ID and, when the blob was read, its digests.
    func addLayer(blob: String, expect: LayerExpectation, parent: Digest?, diffID: Digest,
                  keepBlob: Bool, blobIsOurs: Bool, stage: String,
                  progress: ImageProgress?) throws -> (Digest, LayerBlobDigests?) {
        let chain = Digest.chain(parent: parent, diffID: diffID)
        var digests: LayerBlobDigests? = nil
        var lock = try FileLock(store.layerLockPath(chain), exclusive: false)!
        if !store.isComplete(chain) {
            lock.release()
            lock = try FileLock(store.layerLockPath(chain), exclusive: true)!
            if !store.isComplete(chain) {
                digests = try store.unpackLayer(blob, expect: expect, chain: chain, parent: parent, diffID: diffID,
                                                stage: stage, progress: progress)
                created.append(chain)
            }
            lock.downgrade()
        }
        locks.append(lock)
        if keepBlob {
            if digests == nil {
                progress?(stage + " (checking)", 0, 0)
                digests = try LayerBlob.check(path: blob, expect: expect)
            }
            try stageBlob(blob, digest: Digest(digests!.digest), isOurs: blobIsOurs)
        }
        return (chain, digests)
    }

    private func stageBlob(_ path: String, digest: Digest, isOurs: Bool) throws {
        if store.hasBlob(digest) || stagedBlobs.contains(where: { $0.1 == digest }) { return }
        let staged = staging + "/" + digest.hex
        if isOurs && link(path, staged) == 0 {
            stagedBlobs.append((staged, digest))
            return
        }
        let copied = try Files.copy(path, to: staged)
        guard copied == digest else { throw UnionFSError("layer blob '\(path)' changed while it was read") }
        stagedBlobs.append((staged, digest))
    }

    /// Keeps a small document (manifest, config) as a blob once the operation succeeds.
    func stageDocument(_ bytes: [UInt8]) throws -> Digest {
        let d = Digest.of(bytes)
        if store.hasBlob(d) || stagedBlobs.contains(where: { $0.1 == d }) { return d }
        let staged = staging + "/" + d.hex
        try Files.writeAtomically(staged, bytes)
        stagedBlobs.append((staged, d))
        return d
    }

    /// Lands the blobs, then the records: the images exist from here on.
    func commit(records: [ImageRecord]) throws {
        for (path, d) in stagedBlobs { try store.landBlob(staged: path, digest: d) }
        for r in records { try store.putRecord(r) }
        finished = true
        locks.removeAll()
    }

    /// Removes the layers this operation unpacked, unless another process uses them already.
    private func rollBack() {
        locks.removeAll()
        for chain in created.reversed() {
            guard let lock = try? FileLock(store.layerLockPath(chain), exclusive: true, wait: false) else { continue }
            try? Files.removeTree(store.layerDir(chain))
            lock.release()
        }
    }
}

extension ImageStore {
    /// Unpacks the layer `diffID` over `parent` from `blob` (checked against `expect`) into its
    /// directory, the record written last; the caller holds the layer's lock exclusively.
    /// `beforeRecord` runs once the blob has passed every check and before the record makes the
    /// layer complete: what must exist whenever the layer does (a pulled layer's kept blob) is
    /// landed there, so that a `kill -9` never leaves a complete layer without it.
    func unpackLayer(_ blob: String, expect: LayerExpectation, chain: Digest, parent: Digest?, diffID: Digest,
                     stage: String, progress: ImageProgress?,
                     beforeRecord: () throws -> Void = {}) throws -> LayerBlobDigests {
        let dir = layerDir(chain)
        try Files.removeTree(dir)  // a crashed unpack's leftovers: the record was never written
        try Files.io("cannot create '\(dir)'") { () throws(Errno) in try Sys.mkdir(dir, 0o700) }
        do {
            let result = try LayerApply.apply(tar: blob, to: diffDir(chain), mode: applyMode,
                                              expect: expect,
                                              progress: progress.map { p in { p(stage, $0, $1) } })
            try beforeRecord()
            let record = LayerRecord(chainID: chain, diffID: diffID, parent: parent, size: result.bytes, entries: result.entries)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            try Files.writeAtomically(dir + "/layer.json", Array(try enc.encode(record)))
            return result.digests!
        } catch let e as ConfigurationError {
            try? Files.removeTree(dir)
            throw UnionFSError("\(stage): \(e.message)")
        } catch {
            try? Files.removeTree(dir)
            throw error
        }
    }
}
