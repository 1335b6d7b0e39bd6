import UnionFSImages

/// What a pull or push is doing, for progress displays and `--json` consumers. Sent from
/// several threads at once (one per layer in flight): handlers must be thread-safe.
public enum RegistryEvent: Sendable {
    /// The manifest was resolved: the image's digest and its layers' digests and sizes.
    case resolved(reference: String, manifest: Digest, layers: [LayerInfo])
    /// The store (or an additional store, or the registry for a push) has this layer already.
    case layerExists(LayerInfo)
    /// Bytes of a layer moved so far (of `size`).
    case layerProgress(LayerInfo, bytes: Int64)
    /// A layer was fetched and unpacked (pull) or uploaded or mounted (push).
    case layerDone(LayerInfo, how: String)
    /// A request failed and is tried again.
    case retrying(LayerInfo?, attempt: Int, reason: String)
    /// The image is in the store (pull) or in the registry (push).
    case finished(reference: String, manifest: Digest)
}

/// A layer as events name it.
public struct LayerInfo: Sendable, Equatable {
    /// 0-based position in the manifest (the config is `layers.count` in a push).
    public var index: Int
    public var digest: Digest
    public var size: Int64
}

public typealias RegistryEvents = @Sendable (RegistryEvent) -> Void
