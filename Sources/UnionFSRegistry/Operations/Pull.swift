import Foundation
import NIOCore
import NIOHTTP1
import UnionFS
import UnionFSImages

/// Pulls and pushes images between the store and OCI distribution registries.
public enum Registry {
    /// Pulls `reference` into `store`: resolves the manifest (choosing the platform from a
    /// manifest list, checking a pinned digest), then fetches only the layers neither the store
    /// nor its additional stores have, `options.parallel` at once, each streamed through the
    /// checked unpacker as it arrives (see `LayerReceiver`). A dropped connection resumes
    /// with a Range request from the bytes already written. Returns the image records written.
    public static func pull(_ reference: String, into store: ImageStore, options: RegistryOptions = RegistryOptions(),
                            events: RegistryEvents? = nil) throws -> [ImageRecord] {
        let ref = try ImageReference.parse(reference)
        let client = try RegistryClient(registry: ref.registry, host: ref.apiHost, options: options)
        try client.ping()
        let scopes = ["repository:\(ref.repository):pull"]

        // The manifest, or the manifest list and then the platform's manifest.
        var (bytes, type) = try fetchManifest(client, ref, ref.manifestReference, scopes: scopes)
        if let pinned = ref.digest, Digest.compute(bytes) != pinned {
            throw ImageError("\(ref): the registry sent a manifest with digest \(Digest.compute(bytes)), not the \(pinned) asked for")
        }
        var what = "manifest of \(ref)"
        var document = try ManifestDocument.read(bytes, contentType: type, platform: options.platform, what: what)
        if case .index(let chosen, _) = document {
            (bytes, type) = try fetchManifest(client, ref, chosen.description, scopes: scopes)
            guard Digest.compute(bytes) == chosen else {
                throw ImageError("\(ref): manifest \(chosen) arrived with digest \(Digest.compute(bytes))")
            }
            what = "manifest \(chosen) of \(ref)"
            document = try ManifestDocument.read(bytes, contentType: type, platform: options.platform, what: what)
            if case .index = document { throw ImageError("\(what): an index inside an index is not supported") }
        }
        guard case .manifest(let configDigest, let configSize) = document else {
            throw ImageError("\(what): an index where an image manifest was expected")
        }

        let config = try client.request(.GET, client.url(ref.repository, "blobs/" + configDigest.description),
                                        scopes: scopes, limit: Int(configSize) + 1)
        try check(config, client, ref, what: "config \(configDigest)")
        let image = try IncomingImage(store: store, manifestBytes: bytes, configBytes: config.body, what: what)
        defer { image.close() }
        let infos = image.layers.map { LayerInfo(index: $0.index, digest: $0.digest, size: $0.size) }
        events?(.resolved(reference: ref.description, manifest: image.manifestDigest, layers: infos))

        var missing: [IncomingImage.Layer] = []
        for l in image.layers {
            if image.isPresent(l) { events?(.layerExists(infos[l.index])) } else { missing.append(l) }
        }
        let fetch = ParallelFetch(client: client, ref: ref, image: image, layers: missing, events: events)
        try fetch.run(workers: max(1, min(options.parallel, missing.count)))
        let records = try image.finish(names: [ref.storeName])
        events?(.finished(reference: ref.description, manifest: image.manifestDigest))
        return records
    }

    static func fetchManifest(_ client: RegistryClient, _ ref: ImageReference, _ reference: String,
                              scopes: [String]) throws -> ([UInt8], String?) {
        let r = try client.request(.GET, client.url(ref.repository, "manifests/" + reference),
                                   headers: ["Accept": ManifestDocument.accepted.joined(separator: ", ")], scopes: scopes)
        try check(r, client, ref, what: "manifest \(reference)")
        return (r.body, r.contentType)
    }

    /// Turns a non-2xx reply into the error that says what it means.
    static func check(_ r: Reply, _ client: RegistryClient, _ ref: ImageReference, what: String) throws {
        switch r.status {
        case 200...299: return
        case 401, 403: throw ImageError(client.deniedMessage(status: r.status, what: "\(ref.repository) (\(what))"))
        case 404: throw ImageError("\(ref): \(what) not found in registry '\(ref.registry)' (unknown repository, tag or digest)\(client.errorDetail(r))")
        case 429: throw ImageError("\(ref): registry '\(ref.registry)' is rate-limiting this client (429 Too Many Requests): try again later")
        default: throw ImageError("\(ref): registry '\(ref.registry)' answered \(r.status) for \(what)\(client.errorDetail(r))")
        }
    }
}

/// The missing layers of one pull, fetched by a few worker threads. The first failure stops
/// the others (their layers are abandoned); layers already complete stay in the store.
final class ParallelFetch: @unchecked Sendable {
    let client: RegistryClient
    let ref: ImageReference
    let image: IncomingImage
    let layers: [IncomingImage.Layer]
    let events: RegistryEvents?
    /// Guards `next` and `failure`; held only to take a layer or record an error.
    private let mutex = NSLock()
    private var next = 0
    private var failure: Error?

    init(client: RegistryClient, ref: ImageReference, image: IncomingImage, layers: [IncomingImage.Layer], events: RegistryEvents?) {
        self.client = client
        self.ref = ref
        self.image = image
        self.layers = layers
        self.events = events
    }

    var failed: Bool { mutex.lock(); defer { mutex.unlock() }; return failure != nil }

    func run(workers: Int) throws {
        guard !layers.isEmpty else { return }
        let group = DispatchGroup()
        for _ in 0..<workers {
            group.enter()
            let t = Thread { [self] in
                defer { group.leave() }
                while let l = take() {
                    do { try fetch(l) } catch {
                        mutex.lock()
                        if failure == nil { failure = error }
                        mutex.unlock()
                    }
                }
            }
            t.start()
        }
        group.wait()
        if let failure { throw failure }
    }

    private func take() -> IncomingImage.Layer? {
        mutex.lock()
        defer { mutex.unlock() }
        guard failure == nil, next < layers.count else { return nil }
        next += 1
        return layers[next - 1]
    }

    private func fetch(_ l: IncomingImage.Layer) throws {
        let info = LayerInfo(index: l.index, digest: l.digest, size: l.size)
        guard let receiver = try image.receive(l) else {
            events?(.layerExists(info))
            return
        }
        do {
            try download(receiver, info)
            try receiver.finish()
        } catch {
            receiver.abandon()
            throw error
        }
        events?(.layerDone(info, how: "pulled"))
    }

    /// Streams the blob into the receiver, resuming after a dropped connection or a 5xx with
    /// a Range request for the rest (or skipping what was had when the registry ignores Range).
    private func download(_ receiver: LayerReceiver, _ info: LayerInfo) throws {
        let url = client.url(ref.repository, "blobs/" + info.digest.description)
        let scopes = ["repository:\(ref.repository):pull"]
        var attempt = 0
        while true {
            if failed { throw ImageError("stopped: another layer failed") }
            let start = receiver.received
            var headers: HTTPHeaders = [:]
            if start > 0 { headers.add(name: "Range", value: "bytes=\(start)-") }
            let skip = SkipCounter()
            let events = self.events
            let failedCheck: @Sendable () -> Bool = { [self] in failed }
            do {
                let r = try client.request(.GET, url, headers: headers, scopes: scopes, sink: { buffer in
                    if failedCheck() { throw ImageError("stopped: another layer failed") }
                    var b = buffer
                    let drop = min(Int64(b.readableBytes), skip.remaining)
                    if drop > 0 { b.moveReaderIndex(forwardBy: Int(drop)); skip.remaining -= drop }
                    try b.withUnsafeReadableBytes { try receiver.write($0) }
                    events?(.layerProgress(info, bytes: receiver.received))
                }, onHead: { status, headers in
                    if status == 206 {
                        let range = headers.first(name: "Content-Range") ?? ""
                        guard range.hasPrefix("bytes \(start)-") else {
                            throw ImageError("blob \(info.digest): the registry resumed at '\(range)', not at byte \(start)")
                        }
                    } else {
                        skip.remaining = start  // a whole blob again: drop what was had
                    }
                })
                if r.status == 416 && start > 0 {
                    throw ImageError("\(ref): blob \(info.digest) is truncated in the registry: it ends at \(start) of the \(info.size) bytes the manifest says")
                }
                if !(200...299).contains(r.status) {
                    if r.status >= 500 && r.status != 501 && attempt < client.options.retries {
                        attempt += 1
                        events?(.retrying(info, attempt: attempt, reason: "HTTP \(r.status)"))
                        client.backoff(attempt)
                        continue
                    }
                    try Registry.check(r, client, ref, what: "blob \(info.digest)")
                    throw ImageError("\(ref): blob \(info.digest): unexpected answer \(r.status)")
                }
                // A complete answer shorter than the manifest says is a short blob, not a drop:
                // the receiver's checks name it (truncated).
                return
            } catch let e where client.isTransport(e) {
                guard attempt < client.options.retries else {
                    throw ImageError("\(ref): blob \(info.digest) of layer \(info.index + 1): \(client.describe(e)) at \(receiver.received) of \(info.size) bytes, after \(attempt + 1) attempts (the layers already complete are kept: pull again to finish)")
                }
                attempt += 1
                events?(.retrying(info, attempt: attempt, reason: client.describe(e)))
                client.backoff(attempt)
            }
        }
    }
}

/// Bytes to drop from the start of a response (a registry that ignored a Range request);
/// touched only on the sink queue of one request at a time.
final class SkipCounter: @unchecked Sendable {
    var remaining: Int64 = 0
}
