import Glibc
import SystemPackage

/// One entry of a directory in a tree being compared.
public struct TreeEntry {
    public let name: Name
    public let stat: stat
    /// `security.capability` of the entry (read only when everything else is equal).
    let capability: () -> [UInt8]?
    /// The entry as a directory (called only for directories).
    let open: () throws(Errno) -> any TreeDirectory
}

/// A directory of a tree that `TreeComparison` can walk: a plain directory (a mounted overlay,
/// an unpacked layer) or a directory of an in-process merged view.
public protocol TreeDirectory {
    /// The entries, in any order, without `.` and `..`.
    func entries() throws(Errno) -> [TreeEntry]
}

/// The general diff of two trees (old root, new root), with the kinds and rules of docs/SEMANTICS.md §4. It
/// reads both trees whole; `UpperChanges` gives the same set from an upper dir alone.
public enum TreeComparison {
    /// Every change from `old` to `new`, sorted by path; the root itself is never listed.
    public static func changes(from old: any TreeDirectory, to new: any TreeDirectory) throws(Errno) -> [Change] {
        var out: [Change] = []
        _ = try compare(old, new, path: [], into: &out)
        return Change.sorted(out)
    }

    /// Compares two directories at `path`; true when anything below changed.
    private static func compare(_ old: any TreeDirectory, _ new: any TreeDirectory, path: [UInt8],
                                into out: inout [Change]) throws(Errno) -> Bool {
        let before = out.count
        var olds: [Name: TreeEntry] = [:]
        for e in try old.entries() { olds[e.name] = e }
        for n in try new.entries() {
            let childPath = path + [0x2f] + n.name.bytes
            let isDir = n.stat.st_mode & S_IFMT == S_IFDIR
            guard let o = olds.removeValue(forKey: n.name) else {
                out.append(Change(.added, pathBytes: childPath))
                if isDir { try addAll(n.open(), path: childPath, into: &out) }
                continue
            }
            var changed = MetadataComparison.differs(o.stat, n.stat)
                || (n.stat.st_mode & S_IFMT == S_IFREG && o.capability() != n.capability())
            if isDir {
                if o.stat.st_mode & S_IFMT == S_IFDIR {
                    if try compare(o.open(), n.open(), path: childPath, into: &out) { changed = true }
                } else {
                    try addAll(n.open(), path: childPath, into: &out)
                }
            }
            if changed { out.append(Change(.changed, pathBytes: childPath)) }
        }
        for name in olds.keys { out.append(Change(.deleted, pathBytes: path + [0x2f] + name.bytes)) }
        return out.count > before
    }

    private static func addAll(_ dir: any TreeDirectory, path: [UInt8], into out: inout [Change]) throws(Errno) {
        for e in try dir.entries() {
            let childPath = path + [0x2f] + e.name.bytes
            out.append(Change(.added, pathBytes: childPath))
            if e.stat.st_mode & S_IFMT == S_IFDIR { try addAll(e.open(), path: childPath, into: &out) }
        }
    }
}

/// A plain directory tree (a kernel overlay mount, a flattened layer), walked one component at
/// a time without following symlinks.
public struct PlainDirectory: TreeDirectory {
    let dir: LayerDir

    public init(_ dir: LayerDir) { self.dir = dir }

    public init(path: String) throws(Errno) { dir = try LayerDir.openRoot(path: path) }

    public func entries() throws(Errno) -> [TreeEntry] {
        var out: [TreeEntry] = []
        let dir = self.dir
        try Sys.forEachEntry(in: dir.fd) { (e) throws(Errno) in
            let name = Name(bytes: e.name)
            let st = try dir.stat(e.fileName)
            out.append(TreeEntry(
                name: name, stat: st,
                capability: { name.withFileName { n in EntryXattrs.value(in: dir, n, "security.capability") } },
                open: { () throws(Errno) -> any TreeDirectory in
                    PlainDirectory(try name.withFileName { (n) throws(Errno) in try dir.openChild(n) })
                }))
        }
        return out
    }
}

/// A directory of the merged view of a layer stack, as a mount would show it.
public struct MergedDirectory: TreeDirectory {
    let stack: LayerStack
    let layers: [DirectoryPart]

    /// The merged root of `stack`.
    public init(root stack: LayerStack) {
        self.stack = stack
        layers = stack.rootLayers
    }

    init(stack: LayerStack, layers: [DirectoryPart]) {
        self.stack = stack
        self.layers = layers
    }

    public func entries() throws(Errno) -> [TreeEntry] {
        let stack = self.stack
        return try stack.mergedListing(of: layers).map { (e) throws(Errno) -> TreeEntry in
            let r = try e.name.withFileName { (n) throws(Errno) in try stack.resolve(n, in: layers) }
            return TreeEntry(
                name: e.name, stat: r.stat,
                capability: { e.name.withFileName { n in EntryXattrs.value(in: r.parentDir, n, "security.capability") } },
                open: { () throws(Errno) -> any TreeDirectory in MergedDirectory(stack: stack, layers: r.layers) })
        }
    }
}
