import Glibc
import SystemPackage
import UnionFSCore

/// Reads tar entries into the staging directory, one at a time, checking each.
struct Unpack {
    var entries: StagedEntries
    let progress: LayerProgress?
    var markers = LayerMarkers()
    /// Directory metadata, applied once all entries are in (deepest first).
    var directories: [([Name], EntryMetadata)] = []
    var count = 0
    var bytes: Int64 = 0

    init(entries: StagedEntries, progress: LayerProgress?) {
        self.entries = entries
        self.progress = progress
    }

    mutating func add(_ input: ArchiveInput) throws(ConfigurationError) {
        let path = input.path
        let parts: [Name]
        switch try TarPath.parse(path) {
        case .ignored: return
        case .opaque(let dir): markers.opaques.append(dir); count += 1; return
        case .whiteout(let parent, let name): markers.whiteouts.append((parent, name)); count += 1; return
        case .entry(let p): parts = p
        }
        let shown = TarPath.display(parts)
        let name = parts.last!
        let dir = try entries.directory(Array(parts.dropLast()), create: true)
        let meta = EntryMetadata(mode: input.mode, uid: input.uid, gid: input.gid, mtime: input.mtime,
                                 xattrs: input.xattrs)
        let type = input.mode & S_IFMT
        if let link = input.hardlink {
            try hardLink(name, in: dir, to: link, shown: shown)
        } else {
            if (type == S_IFCHR || type == S_IFBLK) && !entries.isRoot {
                throw UnionFSError("tar entry '\(shown)': device nodes need root")
            }
            guard [S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO].contains(type) else {
                throw UnionFSError.corrupt("tar entry '\(shown)': unsupported file type")
            }
            do {
                try entries.clear(name, in: dir, keepDirectory: type == S_IFDIR)
                try create(name, in: dir, type: type, input: input)
                if type == S_IFDIR {
                    entries.implicitDirectories.remove(parts)
                    directories.append((parts, meta))
                } else {
                    try entries.setMetadata(meta, name, in: dir, isSymlink: type == S_IFLNK)
                }
            } catch let e as ConfigurationError {
                throw e
            } catch {
                throw UnionFSError("tar entry '\(shown)'", wrapping: error)
            }
        }
        count += 1
        progress?(count, bytes)
    }

    private mutating func create(_ name: Name, in dir: LayerDir, type: mode_t, input: ArchiveInput) throws {
        try name.withFileName { (n) throws in
            switch type {
            case S_IFDIR:
                if (try? dir.stat(n)) == nil { try Sys.mkdirat(dir.fd, n.cString, 0o700) }
            case S_IFREG:
                let file = try dir.openFile(n, O_WRONLY | O_CREAT | O_EXCL, 0o600)
                let fd = file.rawValue
                var written: Int64 = 0
                try input.forEachBlock { (block, offset) throws(Errno) in
                    var done = 0
                    while done < block.count {
                        done += try Sys.pwrite(fd, UnsafeRawBufferPointer(rebasing: block[done...]), offset + Int64(done))
                    }
                    written += Int64(block.count)
                }
                try Sys.ftruncate(fd, input.size)  // sparse tails and holes
                file.close()
                bytes += written
            case S_IFLNK:
                guard let target = input.symlink else { throw Errno.invalidArgument }
                try target.withUnsafeBufferPointer { t in
                    try Errno.lift { try (Array(t) + [0]).withUnsafeBytes { b in
                        try Sys.symlinkat(b.baseAddress!.assumingMemoryBound(to: CChar.self), dir.fd, n.cString)
                    } }
                }
            default:
                try Sys.mknodat(dir.fd, n.cString, type | 0o600, type == S_IFIFO ? 0 : input.rdev)
            }
        }
    }

    /// A tar hard link: the target must be an earlier non-directory entry of this same tar,
    /// reached inside the staging directory without following symlinks.
    private mutating func hardLink(_ name: Name, in dir: LayerDir, to link: [UInt8], shown: String) throws(ConfigurationError) {
        guard case .entry(let target) = try TarPath.parse(link) else {
            throw UnionFSError.corrupt("tar entry '\(shown)': hard link to '\(String(decoding: link, as: UTF8.self))' is not a file of the layer")
        }
        let source = try entries.directory(Array(target.dropLast()), create: false)
        let sourceName = target.last!
        do {
            try entries.clear(name, in: dir, keepDirectory: false)
            try sourceName.withCString { (s) throws(Errno) in
                try name.withCString { (d) throws(Errno) in try Sys.linkat(source.fd, s, dir.fd, d, 0) }
            }
        } catch {
            throw UnionFSError.corrupt("tar entry '\(shown)': hard link to '\(TarPath.display(target))' is not a file of the layer (\(error))")
        }
    }

    /// Applies directory metadata, deepest first, once no more children will be created.
    mutating func finishDirectories() throws(ConfigurationError) {
        for (parts, meta) in directories.sorted(by: { $0.0.count > $1.0.count }) {
            let dir = try entries.directory(Array(parts.dropLast()), create: false)
            do { try entries.setMetadata(meta, parts.last!, in: dir, isSymlink: false) } catch {
                throw UnionFSError("tar entry '\(TarPath.display(parts))'", wrapping: error)
            }
        }
        do { try entries.recordImplicitOwnership() } catch {
            throw UnionFSError("layer root: cannot record its owner", wrapping: error)
        }
    }
}
