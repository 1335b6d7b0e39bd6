import Foundation
import UnionFS

/// One layer of an image being loaded: where its blob is and what it must be.
struct SourceLayer {
    var path: String
    /// The blob's media type; nil for docker-archives (found from the bytes).
    var mediaType: String?
    var expect: LayerExpectation
    var diffID: Digest
    /// The blob digest when the manifest gives it (OCI); docker-archives learn it by reading.
    var digest: Digest?
}

/// One image found in an archive, checked as far as it can be without reading the layers.
struct SourceImage {
    var names: [String]
    /// The manifest as it came (OCI), or nil to write one once the layer digests are known.
    var manifestBytes: [UInt8]?
    var configBytes: [UInt8]
    var configDigest: Digest
    var layers: [SourceLayer]
}

/// Reads the images out of an unpacked archive directory: an OCI image layout (`oci-layout`,
/// `index.json`, `blobs/`) or a docker-archive (`manifest.json`). Every JSON blob is checked
/// against its digest and size as it is read; layers are only located here.
struct ImageSource {
    let dir: String
    /// How the user named the archive, for errors.
    let shown: String
    let platform: Platform
    /// Whether `platform` was asked for (else any single image of the host's kind).
    let platformGiven: Bool

    /// The largest JSON document (manifest, index, config) accepted.
    static let jsonLimit: Int64 = 16 << 20
    /// The largest layer blob a manifest may declare (1 TiB): beyond is an absurd size.
    static let layerLimit: Int64 = 1 << 40

    func images() throws -> [SourceImage] {
        if Files.isRegularFile(dir + "/index.json") { return try ociImages() }
        if Files.isRegularFile(dir + "/manifest.json") { return try dockerImages() }
        throw UnionFSError("'\(shown)' is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)")
    }

    // MARK: OCI image layout

    private func ociImages() throws -> [SourceImage] {
        if Files.exists(dir + "/oci-layout") {
            struct Layout: Codable { var imageLayoutVersion: String }
            _ = try decode(Layout.self, try Files.readFile(dir + "/oci-layout", limit: 1 << 16), what: "'\(shown)': oci-layout")
        }
        let indexBytes = try Files.readFile(dir + "/index.json", limit: Int(Self.jsonLimit), what: "'\(shown)': index.json")
        let index = try decode(ImageIndex.self, indexBytes, what: "'\(shown)': index.json")
        let chosen = try choose(index.manifests, in: "index.json")
        var out: [SourceImage] = []
        for d in chosen {
            var names: [String] = []
            if let n = d.annotations?["io.containerd.image.name"] { names.append(n) }
            else if let n = d.annotations?["org.opencontainers.image.ref.name"] { names.append(n) }
            out.append(try ociImage(d, names: names, depth: 0))
        }
        if out.isEmpty { throw UnionFSError.corrupt("'\(shown)': index.json lists no image") }
        return out
    }

    /// Which entries of an index to take: those for the platform when the entries say their
    /// platform, else all of them (an OCI layout holding several named images).
    private func choose(_ entries: [Descriptor], in what: String) throws -> [Descriptor] {
        try platform.pick(entries, in: "'\(shown)': \(what)", given: platformGiven)
    }

    private func ociImage(_ d: Descriptor, names: [String], depth: Int) throws -> SourceImage {
        guard depth < 4 else { throw UnionFSError("'\(shown)': indexes nested too deep at \(d.digest)") }
        let digest = try Digest.parse(d.digest, what: "'\(shown)': index entry")
        let bytes = try readJSONBlob(d, what: "manifest \(digest)")
        // The media type is in the descriptor, the document, or both; they must agree.
        struct Probe: Codable { var mediaType: String?; var manifests: [Descriptor]? }
        let probe = try decode(Probe.self, bytes, what: "manifest \(digest)")
        let type = d.mediaType ?? probe.mediaType ?? (probe.manifests != nil ? MediaType.ociIndex : MediaType.ociManifest)
        if let inner = probe.mediaType, d.mediaType != nil, inner != d.mediaType {
            throw UnionFSError("manifest \(digest): media type '\(inner)' differs from the index's '\(d.mediaType!)'")
        }
        if MediaType.isIndex(type) {
            let index = try decode(ImageIndex.self, bytes, what: "index \(digest)")
            let chosen = try choose(index.manifests, in: "index \(digest)")
            return try ociImage(chosen[0], names: names, depth: depth + 1)
        }
        guard MediaType.isManifest(type) else { throw UnionFSError.corrupt("manifest \(digest): unknown media type '\(type)'") }
        let manifest = try decode(ImageManifest.self, bytes, what: "manifest \(digest)")
        let configType = manifest.config.mediaType ?? MediaType.ociConfig
        guard MediaType.isConfig(configType) else {
            throw UnionFSError.corrupt("manifest \(digest): unknown config media type '\(configType)'")
        }
        let configDigest = try Digest.parse(manifest.config.digest, what: "manifest \(digest) config")
        let configBytes = try readJSONBlob(manifest.config, what: "config \(configDigest)")
        let config = try decode(ConfigSummary.self, configBytes, what: "config \(configDigest)")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw UnionFSError("manifest \(digest): \(manifest.layers.count) layers but its config lists \(config.rootfs.diff_ids.count) diff_ids")
        }
        var layers: [SourceLayer] = []
        for (l, diff) in zip(manifest.layers, config.rootfs.diff_ids) {
            let ld = try Digest.parse(l.digest, what: "manifest \(digest) layer")
            let type = l.mediaType ?? ""
            guard MediaType.isLayer(type) else { throw UnionFSError.corrupt("layer \(ld): unknown media type '\(type)'") }
            guard l.size >= 0, l.size <= Self.layerLimit else { throw UnionFSError("layer \(ld): absurd size \(l.size)") }
            let path = dir + "/blobs/sha256/" + ld.hex
            guard Files.isRegularFile(path) else { throw UnionFSError.notFound("layer \(ld): blob missing from '\(shown)'") }
            let diffID = try Digest.parse(diff, what: "config \(configDigest) diff_ids")
            layers.append(SourceLayer(path: path, mediaType: type,
                                      expect: LayerExpectation(digest: ld.description, size: l.size, diffID: diffID.description),
                                      diffID: diffID, digest: ld))
        }
        return SourceImage(names: names, manifestBytes: bytes, configBytes: configBytes,
                           configDigest: configDigest, layers: layers)
    }

    /// Reads a JSON blob of the layout, checking size and digest.
    private func readJSONBlob(_ d: Descriptor, what: String) throws -> [UInt8] {
        let digest = try Digest.parse(d.digest, what: what)
        guard d.size >= 0, d.size <= Self.jsonLimit else { throw UnionFSError("\(what): absurd size \(d.size)") }
        let path = dir + "/blobs/sha256/" + digest.hex
        guard Files.exists(path) else { throw UnionFSError.notFound("\(what): blob missing from '\(shown)'") }
        let bytes = try Files.readFile(path, limit: Int(Self.jsonLimit), what: what)
        guard Int64(bytes.count) == d.size else { throw UnionFSError("\(what): \(bytes.count) bytes, the descriptor says \(d.size)") }
        guard Digest.of(bytes) == digest else { throw UnionFSError.corrupt("\(what): digest mismatch (read \(Digest.of(bytes)))") }
        return bytes
    }

    // MARK: docker-archive

    private func dockerImages() throws -> [SourceImage] {
        let entries = try decode([DockerArchiveEntry].self,
                                 try Files.readFile(dir + "/manifest.json", limit: Int(Self.jsonLimit), what: "'\(shown)': manifest.json"),
                                 what: "'\(shown)': manifest.json")
        guard !entries.isEmpty else { throw UnionFSError.corrupt("'\(shown)': manifest.json lists no image") }
        return try entries.map { e in
            let configPath = try member(e.Config)
            let configBytes = try Files.readFile(configPath, limit: Int(Self.jsonLimit), what: "config '\(e.Config)'")
            let configDigest = Digest.of(configBytes)
            // Archives name the config by its digest (podman: HEX.json, docker: blobs/sha256/HEX).
            let base = e.Config.split(separator: "/").last.map(String.init) ?? e.Config
            let stem = base.hasSuffix(".json") ? String(base.dropLast(5)) : base
            if Digest.isHex(stem), stem != configDigest.hex {
                throw UnionFSError.corrupt("config '\(e.Config)': digest mismatch (read \(configDigest))")
            }
            let config = try decode(ConfigSummary.self, configBytes, what: "config '\(e.Config)'")
            guard config.rootfs.diff_ids.count == e.Layers.count else {
                throw UnionFSError("'\(shown)': \(e.Layers.count) layers but config '\(e.Config)' lists \(config.rootfs.diff_ids.count) diff_ids")
            }
            let layers = try zip(e.Layers, config.rootfs.diff_ids).map { (name, diff) in
                let path = try member(name)
                guard Files.isRegularFile(path) else { throw UnionFSError.notFound("layer '\(name)': missing from '\(shown)'") }
                let diffID = try Digest.parse(diff, what: "config '\(e.Config)' diff_ids")
                return SourceLayer(path: path, mediaType: nil, expect: LayerExpectation(diffID: diffID.description),
                                   diffID: diffID, digest: nil)
            }
            return SourceImage(names: e.RepoTags ?? [], manifestBytes: nil, configBytes: configBytes,
                               configDigest: configDigest, layers: layers)
        }
    }

    /// The path of a file the archive's manifest names, kept inside the archive.
    private func member(_ name: String) throws -> String {
        let parts = try ArchiveExtract.components(name, archive: shown)
        guard !parts.isEmpty else { throw UnionFSError("'\(shown)': manifest.json names '\(name)'") }
        return dir + "/" + parts.joined(separator: "/")
    }
}
