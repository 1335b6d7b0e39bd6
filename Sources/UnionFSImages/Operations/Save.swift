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
        let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ImageError("cannot create '\(partial)': \(Files.errorText())") }
        do {
            let tar = try archiveWrite { () throws(Errno) in try TarFile(fd: fd) }
            var bytes: Int64 = 0
            var files = 0
            func add(_ name: String, path: String) throws {
                guard let size = Files.size(path) else { throw ImageError("'\(path)': \(Files.errorText())") }
                let src = open(path, O_RDONLY | O_CLOEXEC)
                guard src >= 0 else { throw ImageError("'\(path)': \(Files.errorText())") }
                defer { close(src) }
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
                    guard hasBlob(d) else { throw ImageError("blob \(d) of '\(ref)' is missing from the store") }
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
                    let pfd = open(plain, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                    guard pfd >= 0 else { throw ImageError("cannot create '\(plain)': \(Files.errorText())") }
                    do {
                        _ = try LayerBlob.check(path: blobPath(d), expect: LayerExpectation(digest: d.description, diffID: diff.description),
                                                uncompressedTo: pfd)
                        close(pfd)
                    } catch { close(pfd); throw error }
                    try add(name, path: plain)
                    unlink(plain)
                }
                try add(configName, path: blobPath(image.record.config))
                var entry: [String: Any] = ["Config": configName, "Layers": layerNames]
                entry["RepoTags"] = image.record.name.map { [$0] } ?? []
                try addBytes("manifest.json", try Self.json([entry]))
            }
            try archiveWrite { () throws(Errno) in try tar.close() }
            guard fsync(fd) == 0 else { throw ImageError("syncing '\(partial)': \(Files.errorText())") }
            close(fd)
        } catch {
            close(fd)
            unlink(partial)
            throw error
        }
        guard rename(partial, out) == 0 else {
            let e = Files.errorText()
            unlink(partial)
            throw ImageError("cannot rename '\(partial)' to '\(out)': \(e)")
        }
    }
}

/// Runs a body that throws `Errno`, turning its error into one that says what failed.
func archiveWrite<R>(_ body: () throws(Errno) -> R) throws -> R {
    do { return try body() } catch { throw ImageError("writing the archive: \(error)") }
}
