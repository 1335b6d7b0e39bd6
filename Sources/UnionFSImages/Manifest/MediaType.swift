/// The media types this module reads and writes, and what each means for it.
enum MediaType {
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let ociConfig = "application/vnd.oci.image.config.v1+json"
    static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    static func isIndex(_ t: String?) -> Bool { t == ociIndex || t == dockerList }
    static func isManifest(_ t: String?) -> Bool { t == ociManifest || t == dockerManifest }
    static func isConfig(_ t: String) -> Bool { t == ociConfig || t == dockerConfig }

    /// Layer types: plain, gzip and zstd tars, distributable or not (libarchive detects the
    /// compression from the bytes, so the suffix only has to be one we know).
    static func isLayer(_ t: String) -> Bool {
        if t == dockerLayer || t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" { return true }
        for base in [ociLayer, "application/vnd.oci.image.layer.nondistributable.v1.tar"] {
            for suffix in ["", "+gzip", "+zstd"] where t == base + suffix { return true }
        }
        return false
    }

    /// The OCI layer type for a blob whose first bytes are `magic`.
    static func layer(sniffing magic: [UInt8]) -> String {
        if magic.starts(with: [0x1f, 0x8b]) { return ociLayer + "+gzip" }
        if magic.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return ociLayer + "+zstd" }
        return ociLayer
    }
}
