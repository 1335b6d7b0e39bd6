import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import UnionFS
import UnionFSImages

extension Registry {
    /// Pushes the store's image `source` to `destination` (default: `source` read as a
    /// reference): each blob the registry lacks (HEAD first) is mounted from another repository
    /// of the same registry that an image of the store came from when the registry has it
    /// there, else uploaded (one PUT, or PATCH chunks of `options.chunkSize` for large blobs);
    /// then the manifest. Returns the manifest's digest as the registry names it.
    public static func push(_ source: String, to destination: String? = nil, from store: ImageStore,
                            options: RegistryOptions = RegistryOptions(), events: RegistryEvents? = nil) throws -> Digest {
        let publication = try store.publication(source)
        let ref = try ImageReference.parse(destination ?? source)
        let client = try RegistryClient(registry: ref.registry, host: ref.apiHost, options: options)
        try client.ping()
        let blobs = publication.layers + [publication.config]
        let infos = blobs.enumerated().map { LayerInfo(index: $0, digest: $1.digest, size: $1.size) }
        events?(.resolved(reference: ref.description, manifest: publication.manifestDigest, layers: Array(infos.dropLast())))
        // Other repositories of this registry the store's images came from: mount candidates.
        let siblings = Set(store.imageNames().compactMap { try? ImageReference.parse($0) }
            .filter { $0.registry == ref.registry && $0.repository != ref.repository }.map(\.repository)).sorted()
        var seen = Set<Digest>()
        for (blob, info) in zip(blobs, infos) where seen.insert(blob.digest).inserted {
            try pushBlob(blob, info, client: client, ref: ref, siblings: siblings, options: options, events: events)
        }
        let scopes = ["repository:\(ref.repository):pull,push"]
        let r = try client.request(.PUT, client.url(ref.repository, "manifests/" + ref.manifestReference),
                                   headers: ["Content-Type": publication.manifestMediaType],
                                   body: publication.manifestBytes, scopes: scopes)
        try check(r, client, ref, what: "manifest upload")
        if let said = r.headers.first(name: "Docker-Content-Digest"), said != publication.manifestDigest.description {
            throw ImageError("\(ref): the registry stored the manifest as \(said), not \(publication.manifestDigest)")
        }
        events?(.finished(reference: ref.description, manifest: publication.manifestDigest))
        return publication.manifestDigest
    }

    private static func pushBlob(_ blob: Publication.Blob, _ info: LayerInfo, client: RegistryClient, ref: ImageReference,
                                 siblings: [String], options: RegistryOptions, events: RegistryEvents?) throws {
        let scopes = ["repository:\(ref.repository):pull,push"]
        let head = try client.request(.HEAD, client.url(ref.repository, "blobs/" + blob.digest.description), scopes: scopes)
        if head.status == 200 { events?(.layerExists(info)); return }
        guard head.status == 404 else { try check(head, client, ref, what: "blob \(blob.digest)"); return }

        var location: String? = nil
        for from in siblings.prefix(3) {
            let r = try client.request(.POST, client.url(ref.repository, "blobs/uploads/?mount=\(blob.digest)&from=\(from)"),
                                       scopes: scopes + ["repository:\(from):pull"])
            if r.status == 201 { events?(.layerDone(info, how: "mounted from \(from)")); return }
            if r.status == 202, let l = r.headers.first(name: "Location") { location = client.absolute(l); break }
        }
        if location == nil {
            let r = try client.request(.POST, client.url(ref.repository, "blobs/uploads/"), scopes: scopes)
            try check(r, client, ref, what: "upload of blob \(blob.digest)")
            guard let l = r.headers.first(name: "Location") else {
                throw ImageError("\(ref): the registry started an upload without a Location")
            }
            location = client.absolute(l)
        }
        let fd: Int32
        do { fd = try Sys.open(blob.path, O_RDONLY) } catch { throw UnionFSError.io(error, "'\(blob.path)': \(error)") }
        defer { Sys.close(fd) }
        var offset: Int64 = 0
        var url = location!
        func chunk(_ count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n: Int
                do {
                    n = try bytes.withUnsafeMutableBytes { b in
                        try Sys.pread(fd, UnsafeMutableRawBufferPointer(rebasing: b[done...]), offset + Int64(done))
                    }
                } catch let e as UnionFSError { throw e } catch {
                    throw UnionFSError("reading '\(blob.path)'", wrapping: error)
                }
                guard n > 0 else { throw UnionFSError("reading '\(blob.path)': short read") }
                done += n
            }
            return bytes
        }
        func withDigest(_ u: String) -> String { u + (u.contains("?") ? "&" : "?") + "digest=" + blob.digest.description }
        if blob.size <= options.chunkSize {
            let r = try client.request(.PUT, withDigest(url), headers: ["Content-Type": "application/octet-stream"],
                                       body: try chunk(Int(blob.size)), scopes: scopes)
            try check(r, client, ref, what: "upload of blob \(blob.digest)")
        } else {
            while offset < blob.size {
                let n = Int(min(Int64(options.chunkSize), blob.size - offset))
                let r = try client.request(.PATCH, url, headers: ["Content-Type": "application/octet-stream",
                                                                  "Content-Range": "\(offset)-\(offset + Int64(n) - 1)"],
                                           body: try chunk(n), scopes: scopes)
                try check(r, client, ref, what: "chunk at \(offset) of blob \(blob.digest)")
                if let l = r.headers.first(name: "Location") { url = client.absolute(l) }
                offset += Int64(n)
                events?(.layerProgress(info, bytes: offset))
            }
            let r = try client.request(.PUT, withDigest(url), scopes: scopes)
            try check(r, client, ref, what: "upload of blob \(blob.digest)")
        }
        events?(.layerDone(info, how: "pushed"))
    }

    /// Checks credentials against `registry` (a request to /v2/ that must not be refused),
    /// then files them where podman reads them.
    public static func login(_ registry: String, credentials: Credentials, options: RegistryOptions = RegistryOptions()) throws -> String {
        let ref = try ImageReference.parse(registry + "/probe")
        var o = options
        o.credentials = credentials
        let client = try RegistryClient(registry: ref.registry, host: ref.apiHost, options: o)
        try client.ping()
        let r = try client.request(.GET, client.base + "/v2/", scopes: [])
        if r.status == 401 || r.status == 403 { throw ImageError(client.deniedMessage(status: r.status, what: "/v2/")) }
        guard (200...299).contains(r.status) else { throw ImageError("registry '\(registry)' answered \(r.status) to /v2/") }
        let files = AuthFiles(explicit: options.authFile)
        try files.store(credentials, for: ref.registry)
        return files.writePath
    }

    /// Removes the credentials filed for `registry`.
    public static func logout(_ registry: String, options: RegistryOptions = RegistryOptions()) throws -> String {
        let ref = try ImageReference.parse(registry + "/probe")
        let files = AuthFiles(explicit: options.authFile)
        try files.store(nil, for: ref.registry)
        return files.writePath
    }
}
