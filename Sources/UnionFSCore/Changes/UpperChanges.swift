import Glibc
import SystemPackage

/// The changes an upper directory makes over its lower layers, computed from the upper alone.
///
/// `docker diff` is the comparison of the merged tree with the lower-only tree; this gives the
/// same set while walking only the upper: each upper entry is looked up by name in the merged
/// lowers (the ordinary `resolve` on a stack of the lowers alone). The only lower listings read
/// are those of directories an opaque upper directory hides, since each hidden name is a `D`.
public final class UpperChanges: Sendable {
    public let upper: LayerDir
    /// The lowers alone, read-only, top first.
    public let lowers: LayerStack
    package let reader: UpperReader
    /// Where owners and modes are kept, in the upper and the lowers alike.
    public let owners: OwnerRecords

    /// Opens the upper and the lowers. The workdir is never read: leftovers there do not show.
    public init(lowerdirs: [String], upperdir: String, xattrNamespace: XattrNamespace = .trusted,
                format: UpperFormat = .any, owners: OwnerRecords = .files) throws(ConfigurationError) {
        self.owners = owners
        lowers = try LayerStack(LayerStackConfiguration(lowerdirs: lowerdirs, xattrNamespace: xattrNamespace))
        do { upper = try LayerDir.openRoot(path: upperdir) } catch {
            throw UnionFSError("upperdir '\(upperdir)'", wrapping: error)
        }
        if let st = try? upper.stat(), let same = lowers.layers.first(where: { (try? $0.root.stat()).map(FileID.init) == FileID(st) }) {
            throw ConfigurationError("upperdir '\(upperdir)' is the same directory as lowerdir '\(same.path)'")
        }
        reader = UpperReader(format: format)
    }

    /// Every change, sorted by path. The root itself is never listed (nor made opaque: the
    /// kernel reads no opaque marker on the upper root).
    public func changes() throws(Errno) -> [Change] {
        var out: [Change] = []
        _ = try walk(upper, path: [], lower: lowers.rootLayers, hidesLower: false, into: &out)
        return Change.sorted(out)
    }

    /// Walks the upper directory `dir` at `path` (bytes, "" for the root). `lower` is the merged
    /// lower directory at that path (nil when the lowers have no directory there); `hidesLower`
    /// says the merged directory shows none of it (this directory or an ancestor is opaque).
    /// Returns true when anything at or below `path` changed, so the caller marks it `C`.
    private func walk(_ dir: LayerDir, path: [UInt8], lower: [DirectoryPart]?, hidesLower: Bool,
                      into out: inout [Change]) throws(Errno) -> Bool {
        let before = out.count
        var realNames = Set<Name>()
        for item in try reader.items(in: dir) {
            let childPath = path + [0x2f] + item.name.bytes
            switch item {
            case .whiteout(let name):
                guard !hidesLower, let lower, try lookup(name, in: lower) != nil else { continue }
                out.append(Change(.deleted, pathBytes: childPath))
            case .entry(let name, let st):
                realNames.insert(name)
                try entry(name, st, in: dir, path: childPath, lower: lower, hidesLower: hidesLower, into: &out)
            }
        }
        if hidesLower, let lower {
            for e in try lowers.mergedListing(of: lower) where !realNames.contains(e.name) {
                out.append(Change(.deleted, pathBytes: path + [0x2f] + e.name.bytes))
            }
        }
        return out.count > before
    }

    /// One real entry of an upper directory: `A`, `C` or nothing, and its subtree.
    private func entry(_ name: Name, _ st: stat, in dir: LayerDir, path: [UInt8], lower: [DirectoryPart]?,
                       hidesLower: Bool, into out: inout [Change]) throws(Errno) {
        let isDir = st.st_mode & S_IFMT == S_IFDIR
        guard let lower, var old = try lookup(name, in: lower) else {
            out.append(Change(.added, pathBytes: path))
            if isDir { try addAll(name.withFileName { (n) throws(Errno) in try dir.openChild(n) }, path: path, into: &out) }
            return
        }
        let st = name.withFileName { owners.recorded(st, in: dir, $0) }
        old.stat = name.withFileName { owners.recorded(old.stat, in: old.parentDir, $0) }
        var changed = MetadataComparison.differs(st, old.stat)
        if !changed {
            changed = name.withFileName { n in
                MetadataComparison.capabilitiesDiffer(st, in: dir, n, old.parentDir, n)
            }
        }
        if isDir {
            let child = try name.withFileName { (n) throws(Errno) in try dir.openChild(n) }
            if old.isDirectory {
                let opaque = hidesLower || reader.isOpaque(child)
                if try walk(child, path: path, lower: old.layers, hidesLower: opaque, into: &out) { changed = true }
            } else {
                try addAll(child, path: path, into: &out)  // file → dir: C, children A
            }
        }
        if changed { out.append(Change(.changed, pathBytes: path)) }  // sorted before its children later
    }

    /// `A` for every entry below a directory the lowers do not have (whiteouts there hide nothing).
    private func addAll(_ dir: LayerDir, path: [UInt8], into out: inout [Change]) throws(Errno) {
        for case .entry(let name, let st) in try reader.items(in: dir) {
            let childPath = path + [0x2f] + name.bytes
            out.append(Change(.added, pathBytes: childPath))
            if st.st_mode & S_IFMT == S_IFDIR {
                try addAll(name.withFileName { (n) throws(Errno) in try dir.openChild(n) }, path: childPath, into: &out)
            }
        }
    }

    /// `name` in the merged lower directory `lower`, or nil when the lowers do not show it.
    private func lookup(_ name: Name, in lower: [DirectoryPart]) throws(Errno) -> ResolvedEntry? {
        do {
            return try name.withFileName { (n) throws(Errno) in try lowers.resolve(n, in: lower) }
        } catch .noSuchFileOrDirectory {
            return nil
        }
    }
}
