import Foundation
import Glibc
import SystemPackage
import UnionFS

extension ImageStore {
    /// Loads every image of an archive (an OCI layout directory or tar, or a docker-archive)
    /// into the store, all or nothing: layers are unpacked once each, every blob is checked as
    /// it is read, and the image records are written last. `tag` names the (single) image
    /// besides the names the archive gives. Returns the records written.
    public func load(archive: String, platform: String? = nil, tag: String? = nil,
                     progress: ImageProgress? = nil) throws -> [ImageRecord] {
        do { _ = try Sys.pathStat(archive) } catch .noSuchFileOrDirectory {
            throw UnionFSError.notFound("archive '\(archive)': \(Errno.noSuchFileOrDirectory)")
        } catch { throw UnionFSError.io(error, "archive '\(archive)': \(error)") }
        let add = try StoreAddition(self)
        var dir = archive
        let extracted = !Files.isDirectory(archive)
        if extracted {
            progress?("reading archive", 0, 0)
            dir = add.staging + "/archive"
            try Files.io("cannot create '\(dir)'") { () throws(Errno) in try Sys.mkdir(dir, 0o700) }
            try ArchiveExtract.extract(archive, into: dir)
        }
        let chosen = try platform.map(Platform.parse) ?? Platform.host
        let images = try ImageSource(dir: dir, shown: archive, platform: chosen, platformGiven: platform != nil).images()
        if tag != nil && images.count > 1 {
            throw UnionFSError("archive '\(archive)' holds \(images.count) images: --tag needs exactly one")
        }
        var records: [ImageRecord] = []
        for image in images {
            var parent: Digest? = nil
            var descriptors: [[String: Any]] = []
            for (i, layer) in image.layers.enumerated() {
                let stage = "layer \(i + 1)/\(image.layers.count)"
                let known = layer.digest.map(hasBlob) ?? false
                let (chain, digests) = try add.addLayer(blob: layer.path, expect: layer.expect, parent: parent,
                                                        diffID: layer.diffID, keepBlob: !known,
                                                        blobIsOurs: extracted, stage: stage, progress: progress)
                parent = chain
                if image.manifestBytes == nil {
                    // docker-archive: the manifest is written here, from what was read.
                    let d = try digests ?? LayerBlob.check(path: layer.path, expect: layer.expect)
                    descriptors.append(["mediaType": MediaType.layer(sniffing: Self.magic(layer.path)),
                                        "digest": Digest(d.digest).description, "size": d.size])
                }
            }
            let configDigest = try add.stageDocument(image.configBytes)
            let manifestBytes = try image.manifestBytes ?? Self.json([
                "schemaVersion": 2, "mediaType": MediaType.ociManifest,
                "config": ["mediaType": MediaType.ociConfig, "digest": configDigest.description,
                           "size": image.configBytes.count] as [String: Any],
                "layers": descriptors,
            ])
            let manifestDigest = try add.stageDocument(manifestBytes)
            var names = image.names
            if let tag { names.append(tag) }
            if names.isEmpty { records.append(ImageRecord(name: nil, manifest: manifestDigest, config: configDigest)) }
            for n in Set(names.map(normalizedName)).sorted() {
                records.append(ImageRecord(name: n, manifest: manifestDigest, config: configDigest))
            }
        }
        try add.commit(records: records)
        return records
    }

    /// Whether `path` names an archive rather than an image in the store: a file, or a
    /// directory holding an OCI layout or an unpacked docker-archive.
    public static func looksLikeArchive(_ path: String) -> Bool {
        Files.isRegularFile(path) || Files.isRegularFile(path + "/index.json") || Files.isRegularFile(path + "/manifest.json")
    }

    /// The first bytes of a file, to tell its compression.
    static func magic(_ path: String) -> [UInt8] {
        guard let fd = try? Sys.open(path, O_RDONLY) else { return [] }
        defer { Sys.close(fd) }
        var b = [UInt8](repeating: 0, count: 4)
        let n = (try? Errno.lift { try b.withUnsafeMutableBytes { try Sys.read(fd, $0) } }) ?? 0
        return Array(b.prefix(n))
    }

    /// Canonical JSON bytes: sorted keys, no escaped slashes, so the same document always has
    /// the same digest.
    static func json(_ object: Any) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }
}
