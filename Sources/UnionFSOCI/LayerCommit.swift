import Glibc
import SystemPackage
import UnionFSCore

/// What a commit wrote.
public struct CommitResult: Sendable, Equatable {
    /// sha256 of the uncompressed tar: the layer's diffID in an image config.
    public let diffID: LayerDigest
    /// sha256 of the bytes written (equal to `diffID` without compression): the blob digest.
    public let digest: LayerDigest
    /// Bytes of the uncompressed tar and of the output.
    public let tarSize: Int64
    public let size: Int64
    /// Tar entries written.
    public let entries: Int
}

/// Progress of a commit or apply, for a terminal: entries done and data bytes so far.
public typealias LayerProgress = (_ entries: Int, _ bytes: Int64) -> Void

/// Writes the changes of an upper dir as an OCI layer tar (docs/SEMANTICS.md §5).
///
/// Walks the upper in sorted order, each directory before its children: every upper entry as
/// itself; a whiteout that hides a lower name as an empty `.wh.NAME`; an opaque directory that
/// hides lower content as its entry followed by `DIR/.wh..wh..opq`; a file met again through
/// another hard link as a tar link to the first path. Xattrs go in except the overlay's own.
/// Whiteout markers get fixed metadata (root, 0600, time 0), so the same upper always gives the
/// same bytes.
public struct LayerCommit {
    public let source: UpperChanges

    public init(_ source: UpperChanges) { self.source = source }

    /// Writes the layer to `fd`, compressed as asked, and returns its digests.
    public func write(to fd: Int32, compression: LayerCompression = .none,
                      progress: LayerProgress? = nil) throws(Errno) -> CommitResult {
        let file = HashingSink(next: DescriptorSink(fd: fd))
        let tarSink = HashingSink(next: compression == .none ? file : try CompressingSink(compression, next: file))
        let tar = try TarWriter(sink: tarSink)
        var walker = Walker(source: source, tar: tar, progress: progress)
        try walker.walk(source.upper, path: [], lower: source.lowers.rootLayers, hidesLower: false)
        try tar.close()
        return CommitResult(diffID: tarSink.digest, digest: file.digest, tarSize: tarSink.count,
                            size: file.count, entries: walker.entries)
    }
}

/// One commit's walk over the upper.
private struct Walker {
    let source: UpperChanges
    let tar: TarWriter
    let progress: LayerProgress?
    var entries = 0
    var bytes: Int64 = 0
    /// First tar path of each multiply-linked file, to write later links as tar links.
    var linkPaths: [FileID: [UInt8]] = [:]

    init(source: UpperChanges, tar: TarWriter, progress: LayerProgress?) {
        self.source = source
        self.tar = tar
        self.progress = progress
    }

    /// Writes the children of the upper directory `dir` at `path` ("" or "a/b/"). `lower` and
    /// `hidesLower` are as in `UpperChanges.walk`: they decide which whiteouts hide anything.
    mutating func walk(_ dir: LayerDir, path: [UInt8], lower: [DirectoryPart]?, hidesLower: Bool) throws(Errno) {
        var items: [(tarName: [UInt8], item: UpperItem)] = []
        for item in try source.reader.items(in: dir) {
            switch item {
            case .whiteout(let name):
                guard !hidesLower, let lower, try lookup(name, in: lower) != nil else { continue }
                items.append((Array(".wh.".utf8) + name.bytes, item))
            case .entry(let name, _):
                items.append((name.bytes, item))
            }
        }
        items.sort { $0.tarName.lexicographicallyPrecedes($1.tarName) }
        for (tarName, item) in items {
            switch item {
            case .whiteout:
                try marker(path + tarName)
            case .entry(let name, let st):
                try entry(name, st, in: dir, path: path + tarName, lower: lower, hidesLower: hidesLower)
            }
        }
    }

    private mutating func entry(_ name: Name, _ stored: stat, in dir: LayerDir, path: [UInt8],
                                lower: [DirectoryPart]?, hidesLower: Bool) throws(Errno) {
        let st = name.withFileName { source.owners.recorded(stored, in: dir, $0) }
        let type = st.st_mode & S_IFMT
        var h = TarHeader(path: type == S_IFDIR ? path + [0x2f] : path, mode: st.st_mode,
                          uid: st.st_uid, gid: st.st_gid, mtime: st.st_mtim, size: Int64(st.st_size), rdev: st.st_rdev)
        h.xattrs = try name.withFileName { (n) throws(Errno) in
            try EntryXattrs.all(in: dir, n) { !EntryXattrs.isPrivate($0) }
        }
        if type != S_IFDIR && st.st_nlink > 1 {
            let id = FileID(st)
            if let first = linkPaths[id] {
                h.linkTarget = first
                h.xattrs = []
            } else {
                linkPaths[id] = path
            }
        }
        if type == S_IFLNK { h.symlinkTarget = try name.withFileName { (n) throws(Errno) in try dir.readlink(n) } }
        try tar.add(h)
        entries += 1
        if type == S_IFREG && h.linkTarget == nil {
            let fd = try name.withFileName { (n) throws(Errno) in try dir.openFile(n, O_RDONLY) }
            var done: Int64 = 0
            try tar.addData(from: fd.rawValue, size: Int64(st.st_size)) { done += Int64($0) }
            bytes += done
        }
        progress?(entries, bytes)
        guard type == S_IFDIR else { return }

        let child = try name.withFileName { (n) throws(Errno) in try dir.openChild(n) }
        let old = try lower.flatMap { (l) throws(Errno) in try lookup(name, in: l) }
        let childLower = old.flatMap { $0.isDirectory ? $0.layers : nil }
        var childHides = hidesLower
        if !hidesLower && source.reader.isOpaque(child), let childLower,
           try !source.lowers.mergedListing(of: childLower).isEmpty {
            try marker(h.path + Array(".wh..wh..opq".utf8))
            childHides = true
        }
        try walk(child, path: h.path, lower: childLower, hidesLower: childHides)
    }

    /// An empty whiteout or opaque marker file with fixed metadata.
    private mutating func marker(_ path: [UInt8]) throws(Errno) {
        try tar.add(TarHeader(path: path, mode: Glibc.S_IFREG | 0o600))
        entries += 1
    }

    private func lookup(_ name: Name, in lower: [DirectoryPart]) throws(Errno) -> ResolvedEntry? {
        do {
            return try name.withFileName { (n) throws(Errno) in try source.lowers.resolve(n, in: lower) }
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }
}
