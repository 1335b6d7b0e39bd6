import Foundation
import Glibc
import UnionFS

/// What the store keeps for an image name: the manifest (a blob) and the config it names.
public struct ImageRecord: Codable, Sendable {
    /// `repo:tag`, or nil for an image loaded without a name (listed by ID).
    public var name: String?
    public var manifest: Digest
    public var config: Digest
}

/// What the store keeps about one unpacked layer, beside its directory.
struct LayerRecord: Codable, Sendable {
    var chainID: Digest
    var diffID: Digest
    var parent: Digest?
    var size: Int64
    var entries: Int
}

/// The layer store: layers unpacked once each as overlay lower dirs, keyed by chain ID, shared
/// between images; blobs (manifests, configs, layer blobs as loaded) by digest; image records
/// by name.
///
///     STORE/store.json               the xattr namespace layers were unpacked with
///     STORE/store.lock               shared by load/commit/import, exclusive for rm and prune
///     STORE/layers/CHAIN/diff        the lower dir
///     STORE/layers/CHAIN/layer.json  written last: the layer is complete when it exists
///     STORE/locks/CHAIN              one flock per layer: exclusive to unpack, shared to use
///     STORE/blobs/sha256/HEX
///     STORE/images/HEX.json          HEX = sha256 of the name (or the ID for unnamed images)
///     STORE/tmp/                     staging for archives and blobs, same filesystem
///
/// Everything lands by rename, so a killed process leaves at worst staging behind (removed by
/// `prune`) and a half-unpacked layer never looks complete.
public final class ImageStore: @unchecked Sendable {
    public let root: String
    public let xattrNamespace: XattrNamespace

    /// The default root: /var/lib/unionfs-swift for root, else $XDG_DATA_HOME/unionfs-swift
    /// (~/.local/share/unionfs-swift). Root of a user namespace (`podman unshare`, `unshare -Ur`)
    /// is the user who made it, and uses that user's store, as containers/storage does.
    public static var defaultRoot: String {
        if geteuid() == 0 && Privilege.current.initialUserNamespace { return "/var/lib/unionfs-swift" }
        if let xdg = getenv("XDG_DATA_HOME").map({ String(cString: $0) }), xdg.hasPrefix("/") {
            return xdg + "/unionfs-swift"
        }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/tmp"
        return home + "/.local/share/unionfs-swift"
    }

    /// Opens the store at `root`, creating it when missing. A store that exists but cannot be
    /// written (a read-only filesystem such as an NFS export, or `readOnly`) is opened
    /// read-only: images are found and mounted from it, nothing is written and no lock is
    /// taken there (nothing can prune it from under a mount), and adding to it is an error.
    public init(root: String? = nil, readOnly: Bool = false) throws {
        var r = root ?? ImageStore.defaultRoot
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
        let existing = Files.isRegularFile(r + "/store.json")
        self.readOnly = readOnly || (existing && !Files.isWritableDirectory(r))
        if readOnly && !existing { throw UnionFSError.notFound("store '\(r)' does not exist (no store.json)") }
        if !self.readOnly {
            for dir in ["layers", "locks", "blobs/sha256", "images", "tmp"] {
                try Files.makeDirectories(r + "/" + dir, mode: 0o700)
            }
        }
        // Fixed when the store is made: root gets the kernel's form (whiteout devices, trusted
        // xattrs), others OCI marker files and user xattrs, which need no privilege.
        struct Settings: Codable { var xattrNamespace: String; var whiteouts: String? }
        let settingsPath = r + "/store.json"
        if Files.exists(settingsPath) {
            let s = try decode(Settings.self, try Files.readFile(settingsPath), what: "store '\(r)': store.json")
            guard let ns = XattrNamespace(rawValue: s.xattrNamespace), [nil, "device", "oci"].contains(s.whiteouts) else {
                throw UnionFSError("store '\(r)': store.json has unknown settings")
            }
            xattrNamespace = ns
            ociWhiteouts = s.whiteouts == "oci"
        } else {
            let root = geteuid() == 0
            xattrNamespace = root ? .trusted : .user
            ociWhiteouts = !root
            let s = Settings(xattrNamespace: xattrNamespace.rawValue, whiteouts: root ? "device" : "oci")
            try Files.writeAtomically(settingsPath, Array(try JSONEncoder().encode(s)))
        }
    }

    /// Whether layers keep whiteouts as OCI marker files rather than devices.
    public let ociWhiteouts: Bool

    /// Opened read-only: see `init`.
    public let readOnly: Bool

    /// Read-only stores whose images and layers this one uses before fetching them again
    /// (`--additional-store`, as containers/storage's additional image stores): looked up
    /// after this store, in order. Their layers must have this store's whiteout form.
    public private(set) var additionalStores: [ImageStore] = []

    /// Adds a read-only store to look in (see `additionalStores`).
    public func addAdditionalStore(_ path: String) throws {
        let other = try ImageStore(root: path, readOnly: true)
        guard other.ociWhiteouts == ociWhiteouts, other.xattrNamespace == xattrNamespace else {
            throw UnionFSError("additional store '\(path)' keeps whiteouts as \(other.ociWhiteouts ? "OCI files" : "devices") with \(other.xattrNamespace.rawValue) xattrs, unlike the store '\(root)': its layers cannot be mixed")
        }
        additionalStores.append(other)
    }

    /// Where this store's layers (and uppers mounted over them by `image mount`, which then
    /// sets `xattr_permissions=2`) keep owners and modes: in `user.containers.override_stat`
    /// when the store was made without root, which cannot chown.
    public var recordedOwners: OwnerRecords {
        ociWhiteouts ? .overrideXattr(uid: geteuid(), gid: getegid()) : .files
    }

    /// How layers are unpacked into this store.
    var applyMode: ApplyMode { ociWhiteouts ? .ociLayer : .layer(xattrNamespace) }

    // MARK: Paths

    func blobPath(_ d: Digest) -> String { root + "/blobs/sha256/" + d.hex }
    func layerDir(_ chain: Digest) -> String { root + "/layers/" + chain.hex }
    /// The lower dir of a layer, for lowerdir=.
    public func diffDir(_ chain: Digest) -> String { layerDir(chain) + "/diff" }
    func layerLockPath(_ chain: Digest) -> String { root + "/locks/" + chain.hex }
    var tmp: String { root + "/tmp" }

    /// The store-wide lock: shared while adding, exclusive while removing. A read-only store
    /// takes none, and cannot be changed.
    func storeLock(exclusive: Bool) throws(UnionFSError) -> FileLock {
        guard !readOnly else { throw UnionFSError("store '\(root)' is read-only: it can be mounted from, not changed") }
        return try FileLock(root + "/store.lock", exclusive: exclusive)!
    }

    // MARK: Blobs

    func hasBlob(_ d: Digest) -> Bool { Files.isRegularFile(blobPath(d)) }

    func readBlob(_ d: Digest, what: String) throws(UnionFSError) -> [UInt8] {
        let bytes = try Files.readFile(blobPath(d), what: "\(what) \(d)")
        guard Digest.of(bytes) == d else { throw UnionFSError.corrupt("store blob \(d) (\(what)) is damaged: its digest differs") }
        return bytes
    }

    /// Stores small verified bytes as a blob (atomic, idempotent).
    func putBlob(_ bytes: [UInt8]) throws(UnionFSError) -> Digest {
        let d = Digest.of(bytes)
        if !hasBlob(d) { try Files.writeAtomically(blobPath(d), bytes) }
        return d
    }

    /// Moves a staged file whose digest was checked into the blobs.
    func landBlob(staged: String, digest: Digest) throws(UnionFSError) {
        if hasBlob(digest) { try? Sys.unlink(staged); return }
        do { try Sys.rename(staged, to: blobPath(digest)) } catch {
            throw .io(error, "cannot store blob \(digest): \(error)")
        }
    }

    // MARK: Layers

    func layerRecord(_ chain: Digest) -> LayerRecord? {
        guard let bytes = try? Files.readFile(layerDir(chain) + "/layer.json") else { return nil }
        return try? JSONDecoder().decode(LayerRecord.self, from: Data(bytes))
    }

    func isComplete(_ chain: Digest) -> Bool { layerRecord(chain) != nil }

    /// Every layer directory's chain ID, complete or not.
    func allLayers() -> [Digest] { Files.list(root + "/layers").compactMap { Digest("sha256:" + $0) } }

    /// Takes shared locks on the layers of a chain, failing when one is missing: what a mount
    /// holds for its lifetime so that prune leaves its lowers alone.
    func useLayers(_ chains: [Digest]) throws(UnionFSError) -> [FileLock] {
        var locks: [FileLock] = []
        for c in chains {
            if !readOnly { locks.append(try FileLock(layerLockPath(c), exclusive: false)!) }
            guard isComplete(c) else { throw UnionFSError.notFound("layer \(c) is missing from the store '\(root)'") }
        }
        return locks
    }

    /// The store holding the complete layer `chain`: this one, else the first additional store
    /// that has it; nil when none has it.
    func holder(of chain: Digest) -> ImageStore? {
        if isComplete(chain) { return self }
        return additionalStores.first { $0.isComplete(chain) }
    }

    /// Whether this store or an additional one holds the complete layer `chain`.
    public func hasLayer(_ chain: Digest) -> Bool { holder(of: chain) != nil }

    // MARK: Images

    private func recordPath(key: String) -> String { root + "/images/" + Digest.of(Array(key.utf8)).hex + ".json" }

    func records() -> [ImageRecord] {
        Files.list(root + "/images").filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let bytes = try? Files.readFile(root + "/images/" + name) else { return nil }
            return try? JSONDecoder().decode(ImageRecord.self, from: Data(bytes))
        }
    }

    func putRecord(_ r: ImageRecord) throws(UnionFSError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let bytes: Data
        do { bytes = try enc.encode(r) } catch { throw UnionFSError("image record of '\(r.name ?? r.config.description)': \(error)") }
        try Files.writeAtomically(recordPath(key: r.name ?? r.config.description), Array(bytes))
    }

    func removeRecord(_ r: ImageRecord) throws(UnionFSError) {
        let p = recordPath(key: r.name ?? r.config.description)
        do { try Sys.unlink(p) } catch .noSuchFileOrDirectory {} catch {
            throw UnionFSError.io(error, "cannot remove '\(p)': \(error)")
        }
    }

    /// Finds the image a reference means, in this store and then the additional ones; the
    /// store returned holds its record and documents.
    func locate(_ ref: String) throws(UnionFSError) -> (ImageStore, ImageRecord) {
        do { return (self, try resolve(ref)) } catch {
            for other in additionalStores { if let r = try? other.resolve(ref) { return (other, r) } }
            throw error
        }
    }

    /// Finds the image a reference means: a name (`repo` means `repo:latest`, `localhost/` may
    /// be left out), or an ID (the config digest, `sha256:` optional, any unique prefix of 4+).
    public func resolve(_ ref: String) throws(UnionFSError) -> ImageRecord {
        let all = records()
        let n = normalizedName(ref)
        // Short names as registries expand them (`alpine` is `docker.io/library/alpine:latest`).
        let names = Set([ref, n, "localhost/" + n, "docker.io/" + n, "docker.io/library/" + n])
        if let r = all.first(where: { $0.name.map(names.contains) ?? false }) { return r }
        var hex = ref.hasPrefix("sha256:") ? String(ref.dropFirst(7)) : ref
        hex = hex.lowercased()
        if hex.count >= 4, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
            let hits = all.filter { $0.config.hex.hasPrefix(hex) }
            if Set(hits.map(\.config)).count == 1 { return hits[0] }
            if hits.count > 1 { throw UnionFSError("image ID '\(ref)' is ambiguous: give more digits") }
        }
        throw UnionFSError.notFound("image '\(ref)' is not in the store '\(root)'")
    }

    /// The image's manifest and config, read from the blobs.
    func stored(_ record: ImageRecord) throws(UnionFSError) -> StoredImage {
        let manifestBytes = try readBlob(record.manifest, what: "manifest")
        let manifest = try decode(ImageManifest.self, manifestBytes, what: "manifest \(record.manifest)")
        let configBytes = try readBlob(record.config, what: "config")
        let config = try decode(ConfigSummary.self, configBytes, what: "config \(record.config)")
        var diffIDs: [Digest] = []
        for d in config.rootfs.diff_ids { diffIDs.append(try Digest.parse(d, what: "config \(record.config)")) }
        return StoredImage(record: record, manifestBytes: manifestBytes, manifest: manifest,
                           configBytes: configBytes, config: config, diffIDs: diffIDs)
    }
}

/// An image as the store has it.
struct StoredImage {
    var record: ImageRecord
    var manifestBytes: [UInt8]
    var manifest: ImageManifest
    var configBytes: [UInt8]
    var config: ConfigSummary
    var diffIDs: [Digest]

    /// Chain IDs, bottom layer first.
    var chainIDs: [Digest] {
        var out: [Digest] = []
        for d in diffIDs { out.append(Digest.chain(parent: out.last, diffID: d)) }
        return out
    }
}

/// `repo` → `repo:latest`; a name with a tag or digest stays as it is.
func normalizedName(_ ref: String) -> String {
    let last = ref.split(separator: "/").last.map(String.init) ?? ref
    return last.contains(":") || last.contains("@") ? ref : ref + ":latest"
}

/// Decodes JSON, naming the document when it does not parse.
func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws(UnionFSError) -> T {
    do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
        throw UnionFSError.corrupt("\(what) does not parse: \(jsonProblem(error))")
    }
}

/// A one-line account of a JSON decoding error.
func jsonProblem(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let c):
        return "missing '\((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
        return "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
    case DecodingError.dataCorrupted(let c):
        return c.codingPath.isEmpty ? "not JSON" : "bad value at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
    default:
        return "\(error)"
    }
}
