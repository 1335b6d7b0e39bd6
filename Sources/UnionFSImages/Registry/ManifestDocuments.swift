import Foundation
import UnionFS

/// What a registry answered for a manifest reference, read as far as choosing what to fetch next:
/// an index (a manifest list) to pick the platform's manifest from, or an image manifest.
/// The registry client only moves bytes; what they mean is decided here, with the same rules
/// `load` applies to archives.
public enum ManifestDocument: Sendable {
    /// An index: the manifest chosen for the platform, by digest, with its media type.
    case index(chosen: Digest, mediaType: String?)
    /// An image manifest: its config blob and layer count.
    case manifest(config: Digest, configSize: Int64)

    /// The media types a registry is asked for, most wanted first (the Accept header).
    public static let accepted = [MediaType.ociIndex, MediaType.dockerList, MediaType.ociManifest, MediaType.dockerManifest]

    /// Reads `bytes` as the registry's `contentType` says (or the document's own mediaType),
    /// choosing the platform's entry of an index. `what` names the document in errors.
    public static func read(_ bytes: [UInt8], contentType: String?, platform: String?, what: String) throws -> ManifestDocument {
        struct Probe: Codable { var mediaType: String?; var manifests: [Descriptor]?; var schemaVersion: Int? }
        let probe = try decode(Probe.self, bytes, what: what)
        // Content-Type may carry parameters; registries answer text/plain or JSON for old uploads.
        let header = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) }
        let known = header.flatMap { MediaType.isIndex($0) || MediaType.isManifest($0) ? $0 : nil }
        let type = probe.mediaType ?? known ?? (probe.manifests != nil ? MediaType.ociIndex : MediaType.ociManifest)
        if let inner = probe.mediaType, let known, inner != known {
            throw UnionFSError("\(what): media type '\(inner)' differs from the registry's '\(known)'")
        }
        if probe.schemaVersion == 1 {
            throw UnionFSError("\(what): Docker schema 1 manifests are not supported (push the image again with a current tool)")
        }
        if MediaType.isIndex(type) {
            let index = try decode(ImageIndex.self, bytes, what: what)
            let given = platform != nil
            let chosen = try platform.map(Platform.parse) ?? Platform.host
            let entries = try chosen.pick(index.manifests, in: what, given: given)
            guard let first = entries.first else { throw UnionFSError.corrupt("\(what) lists no image") }
            guard entries.count == 1 || index.manifests.count == 1 else {
                throw UnionFSError("\(what) lists \(entries.count) images without platforms: cannot choose one")
            }
            if let t = first.mediaType, !MediaType.isManifest(t) {
                throw UnionFSError("\(what): entry \(first.digest) has unsupported media type '\(t)'")
            }
            return .index(chosen: try Digest.parse(first.digest, what: what), mediaType: first.mediaType)
        }
        guard MediaType.isManifest(type) else { throw UnionFSError("\(what): unsupported media type '\(type)'") }
        let manifest = try decode(ImageManifest.self, bytes, what: what)
        let configType = manifest.config.mediaType ?? MediaType.ociConfig
        guard MediaType.isConfig(configType) else { throw UnionFSError("\(what): unsupported config media type '\(configType)'") }
        guard manifest.config.size >= 0, manifest.config.size <= ImageSource.jsonLimit else {
            throw UnionFSError("\(what): absurd config size \(manifest.config.size)")
        }
        return .manifest(config: try Digest.parse(manifest.config.digest, what: "\(what) config"), configSize: manifest.config.size)
    }
}

extension Digest {
    /// The digest of `bytes`, for callers outside this module.
    public static func compute(_ bytes: [UInt8]) -> Digest { of(bytes) }
}
