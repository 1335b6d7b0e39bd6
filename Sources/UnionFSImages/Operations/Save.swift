import Glibc
import SystemPackage
import UnionFS

/// The archive formats `image save` writes.
public enum ArchiveFormat: String, Sendable, CaseIterable {
    /// A tar of an OCI image layout (`podman save --format oci-archive`).
    case oci
    /// `docker save` form: manifest.json, the config, uncompressed layer tars.
    case dockerArchive = "docker-archive"
}

extension ImageStore {
    /// Writes an image as an archive file, landed by rename once complete.
    public func save(_ ref: String, to out: String, format: ArchiveFormat, progress: ImageProgress? = nil) throws {
        let image = try stored(try resolve(ref))
        // Shared: prune (exclusive) must not clear this staging while it is in use.
        let lock = try storeLock(exclusive: false)
        defer { lock.release() }
        let staging = try Files.makeTemporaryDirectory(in: tmp, prefix: "save")
        defer { try? Files.removeTree(staging) }
        let partial = out + ".partial-\(getpid())"
        let fd = try Files.io("cannot create '\(partial)'") { () throws(Errno) in
            try Sys.open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        do {
            let tar = try archiveWrite { () throws(Errno) in try TarFile(fd: fd) }
            var bytes: Int64 = 0
            var files = 0
            func add(_ name: String, path: String) throws {
                let src = try Files.io("'\(path)'") { () throws(Errno) in try Sys.open(path, O_RDONLY) }
                defer { Sys.close(src) }
                let size = try Files.io("'\(path)'") { () throws(Errno) in Int64(try Sys.fstat(src).st_size) }
                files += 1
                try archiveWrite { () throws(Errno) in try tar.addFile(name, from: src, size: size) { n in
                    bytes += Int64(n)
                    progress?("saving", files, bytes)
                } }
            }
            func addBytes(_ name: String, _ content: [UInt8]) throws {
                let p = staging + "/doc"
                try Files.writeAtomically(p, content)
                try add(name, path: p)
            }
            switch format {
            case .oci:
                try addBytes("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
                var entry: [String: Any] = ["mediaType": image.manifest.mediaType ?? MediaType.ociManifest,
                                            "digest": image.record.manifest.description, "size": image.manifestBytes.count]
                if let name = image.record.name {
                    entry["annotations"] = ["org.opencontainers.image.ref.name": name, "io.containerd.image.name": name]
                }
                try addBytes("index.json", try Self.json(["schemaVersion": 2, "mediaType": MediaType.ociIndex, "manifests": [entry]]))
                try archiveWrite { () throws(Errno) in try tar.addDirectory("blobs") }
                try archiveWrite { () throws(Errno) in try tar.addDirectory("blobs/sha256") }
                var seen = Set<Digest>()
                let blobs = [image.record.manifest, image.record.config]
                    + (try image.manifest.layers.map { try Digest.parse($0.digest, what: "manifest \(image.record.manifest)") })
                for d in blobs where seen.insert(d).inserted {
                    guard hasBlob(d) else { throw UnionFSError.notFound("blob \(d) of '\(ref)' is missing from the store") }
                    try add("blobs/sha256/" + d.hex, path: blobPath(d))
                }
            case .dockerArchive:
                let configName = image.record.config.hex + ".json"
                var layerNames: [String] = []
                for (l, diff) in zip(image.manifest.layers, image.diffIDs) {
                    let d = try Digest.parse(l.digest, what: "manifest \(image.record.manifest)")
                    let name = diff.hex + ".tar"
                    layerNames.append(name)
                    if layerNames.dropLast().contains(name) { continue }
                    // Layers go in uncompressed, their digest then being the diffID.
                    let plain = staging + "/" + name
                    let pfd = try Files.io("cannot create '\(plain)'") { () throws(Errno) in
                        try Sys.open(plain, O_WRONLY | O_CREAT | O_EXCL, 0o600)
                    }
                    do {
                        _ = try LayerBlob.check(path: blobPath(d), expect: LayerExpectation(digest: d.description, diffID: diff.description),
                                                uncompressedTo: pfd)
                        Sys.close(pfd)
                    } catch { Sys.close(pfd); throw error }
                    try add(name, path: plain)
                    try? Sys.unlink(plain)
                }
                try add(configName, path: blobPath(image.record.config))
                var entry: [String: Any] = ["Config": configName, "Layers": layerNames]
                entry["RepoTags"] = image.record.name.map { [$0] } ?? []
                try addBytes("manifest.json", try Self.json([entry]))
            }
            try archiveWrite { () throws(Errno) in try tar.close() }
            try Files.io("syncing '\(partial)'") { () throws(Errno) in try Sys.fsync(fd) }
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            try? Sys.unlink(partial)
            throw error
        }
        do { try Sys.rename(partial, to: out) } catch {
            try? Sys.unlink(partial)
            throw UnionFSError.io(error, "cannot rename '\(partial)' to '\(out)': \(error)")
        }
    }
}

/// Runs a body that throws `Errno`, turning its error into one that says what failed.
func archiveWrite<R>(_ body: () throws(Errno) -> R) throws -> R {
    do { return try body() } catch { throw UnionFSError("writing the archive", wrapping: error) }
}
