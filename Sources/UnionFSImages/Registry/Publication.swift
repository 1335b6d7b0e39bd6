import UnionFS

/// What pushing an image uploads: its blobs as the store keeps them, then its manifest.
public struct Publication: Sendable {
    public struct Blob: Sendable {
        public let digest: Digest
        public let size: Int64
        /// The blob file in the store.
        public let path: String
    }

    public let manifestBytes: [UInt8]
    public let manifestMediaType: String
    public let manifestDigest: Digest
    public let config: Blob
    public let layers: [Blob]
}

extension ImageStore {
    /// The blobs and manifest of an image, for a push. A layer whose blob the store does not
    /// keep (one unpacked from a docker-archive whose blob differs) cannot be pushed.
    public func publication(_ ref: String) throws -> Publication {
        let (home, record) = try locate(ref)
        let image = try home.stored(record)
        func blob(_ d: Digest, declared: Int64, what: String) throws -> Publication.Blob {
            let holder = ([home, self] + additionalStores).first { $0.hasBlob(d) }
            guard let holder, let size = Files.size(holder.blobPath(d)) else {
                throw UnionFSError("\(what) \(d) of '\(ref)' is not kept in the store: it cannot be pushed (load or pull the image again)")
            }
            guard size == declared else { throw UnionFSError("store blob \(d) (\(what)) is \(size) bytes, its manifest says \(declared)") }
            return Publication.Blob(digest: d, size: size, path: holder.blobPath(d))
        }
        let config = try blob(record.config, declared: image.manifest.config.size, what: "config")
        let layers = try image.manifest.layers.map { l in
            try blob(try Digest.parse(l.digest, what: "manifest \(record.manifest)"), declared: l.size, what: "layer")
        }
        return Publication(manifestBytes: image.manifestBytes,
                           manifestMediaType: image.manifest.mediaType ?? MediaType.ociManifest,
                           manifestDigest: record.manifest, config: config, layers: layers)
    }
}

extension ImageStore {
    /// The names of the images in this store: where they came from, for a push to mount
    /// blobs from.
    public func imageNames() -> [String] { records().compactMap(\.name) }
}
