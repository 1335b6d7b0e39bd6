/// The JSON documents of images, as far as this module reads them. Documents are kept as the
/// bytes they came in (their digest is over those bytes); these types only read fields out.

struct Descriptor: Codable, Sendable {
    var mediaType: String?
    var digest: String
    var size: Int64
    var annotations: [String: String]?
    var platform: Platform?
}

struct Platform: Codable, Sendable, Equatable, CustomStringConvertible {
    var architecture: String
    var os: String
    var variant: String?

    enum CodingKeys: String, CodingKey { case architecture, os, variant }

    var description: String { "\(os)/\(architecture)" + (variant.map { "/" + $0 } ?? "") }
}

struct ImageIndex: Codable, Sendable {
    var schemaVersion: Int?
    var mediaType: String?
    var manifests: [Descriptor]
    var annotations: [String: String]?
}

struct ImageManifest: Codable, Sendable {
    var schemaVersion: Int?
    var mediaType: String?
    var config: Descriptor
    var layers: [Descriptor]
}

/// The parts of an image config this module needs; the rest stays in the original bytes.
struct ConfigSummary: Codable, Sendable {
    struct RootFS: Codable, Sendable {
        var type: String?
        var diff_ids: [String]
    }
    var architecture: String?
    var os: String?
    var rootfs: RootFS
}

/// One image of a `docker save` / `podman save` archive's manifest.json.
struct DockerArchiveEntry: Codable, Sendable {
    var Config: String
    var RepoTags: [String]?
    var Layers: [String]
}
