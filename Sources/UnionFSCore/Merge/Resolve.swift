import Glibc
import SystemPackage

/// One layer's part of a merged directory: which layer, and that layer's directory (a
/// `LayerDir`, the open directory itself). A merged directory is a list of these, top first.
public struct DirectoryPart: Sendable {
    /// Index of the layer in the stack (0 is the top).
    public let layer: Int
    public let dir: LayerDir
    /// The directory's opaque xattr is "x": it holds xattr whiteouts that readdir must hide.
    let holdsXattrWhiteouts: Bool
}

/// What a name resolves to in a merged directory (docs/SEMANTICS.md §2).
public struct ResolvedEntry: @unchecked Sendable {
    /// `lstat` of the topmost entry (the one that decides type and metadata).
    public var stat: stat
    /// Layer index of the topmost entry.
    public var topLayer: Int
    /// The directory holding the topmost entry, in that layer.
    public var parentDir: LayerDir
    /// For a directory: its layers, top first, cut at the first opaque one. Empty otherwise.
    public var layers: [DirectoryPart]

    public var isDirectory: Bool { stat.st_mode & S_IFMT == S_IFDIR }
}

/// What one layer holds under a name.
enum LayerHit {
    case absent
    case whiteout
    case entry(stat)
}

/// How a directory in one layer limits the merge below it.
enum Opacity {
    case none
    case opaque
    /// Opaque value "x": not opaque, but holds xattr whiteouts.
    case holdsXattrWhiteouts
}

extension LayerStack {
    /// The root directory of the merged view: every layer root, top first. A root is never
    /// opaque (the kernel merges all roots), but may hold xattr whiteouts (opaque value "x").
    public var rootLayers: [DirectoryPart] { rootParts }

    /// Resolves `name` in a merged directory whose layers are `parent` (top first).
    ///
    /// First hit decides: a whiteout ends the search with `ENOENT`; a non-directory is the result;
    /// directories are gathered down the stack until an opaque one, or until a non-directory
    /// below them ends the merge. One `fstatat` per layer probed, plus one for the OCI whiteout
    /// name in lower layers where the name is absent.
    public func resolve(_ name: borrowing FileName, in parent: [DirectoryPart]) throws(Errno) -> ResolvedEntry {
        var result: ResolvedEntry? = nil
        for dl in parent {
            let hit = try probe(name, in: dl)
            guard case .entry(let st) = hit else {
                if case .whiteout = hit { break }
                continue
            }
            let isDir = st.st_mode & S_IFMT == S_IFDIR
            if result == nil {
                result = ResolvedEntry(stat: st, topLayer: dl.layer, parentDir: dl.dir, layers: [])
                guard isDir else { break }
            } else if !isDir {
                break  // below a directory: merge only directories, stop at anything else
            }
            let child = try dl.dir.openChild(name)
            let opacity = self.opacity(of: child, layer: dl.layer)
            result!.layers.append(DirectoryPart(layer: dl.layer, dir: child,
                                           holdsXattrWhiteouts: opacity == .holdsXattrWhiteouts))
            if opacity == .opaque { break }
        }
        guard let r = result else { throw .noSuchFileOrDirectory }
        return r
    }

    /// Looks at `name` in one layer's directory.
    @inline(__always)
    func probe(_ name: borrowing FileName, in dl: DirectoryPart) throws(Errno) -> LayerHit {
        let isLower = !layers[dl.layer].isUpper
        let oci = readsOCI(dl.layer)
        // In the OCI form `.wh.*` names are markers, never files: they do not exist by name.
        if oci && name.hasPrefix(".wh.") { return .absent }
        let st: stat
        do {
            st = try dl.dir.stat(name)
        } catch .noSuchFileOrDirectory {
            if oci && hasOCIWhiteout(for: name, in: dl.dir) {
                return .whiteout
            }
            return .absent
        }
        let type = st.st_mode & S_IFMT
        if type == S_IFCHR && st.st_rdev == 0 { return .whiteout }
        if isLower && type == S_IFREG && st.st_size == 0 && isXattrWhiteout(name, in: dl.dir) {
            return .whiteout
        }
        return .entry(st)
    }

    /// True when `.wh.<name>` exists in `dir` (the OCI/AUFS whiteout form).
    func hasOCIWhiteout(for name: borrowing FileName, in dir: LayerDir) -> Bool {
        (try? name.withPrefix(".wh.") { (marker) throws(Errno) in _ = try dir.stat(marker) }) != nil
    }

    /// True when the zero-size regular file `name` carries `<ns>.overlay.whiteout`.
    /// Both namespaces are read: only lowers hold xattr whiteouts. Where both are readable, one
    /// `listxattr` answers for both (most such files have no xattr at all, and each call costs
    /// a path walk: a listing of 10k empty files spent a fifth of its time here with a
    /// `getxattr` per name); a list too long for the buffer falls back to one call per name.
    /// Calls go through the directory's descriptor: no descriptor for the file itself.
    func isXattrWhiteout(_ name: borrowing FileName, in dir: LayerDir) -> Bool {
        guard let other = names.otherWhiteout else { return has(names.whiteout, name, in: dir) }
        let listed = withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { (buf) -> Bool? in
            guard let n = try? dir.entryXattrList(name, buf) else { return nil }
            return XattrNameList(UnsafeRawBufferPointer(rebasing: buf[..<n])).contains(names.whiteout, other)
        }
        if let listed { return listed }
        return has(names.whiteout, name, in: dir) || has(other, name, in: dir)
    }

    /// True when the entry `name` of `dir` carries the xattr `xattr` (nil: one this process
    /// cannot read).
    private func has(_ xattr: [CChar]?, _ name: borrowing FileName, in dir: LayerDir) -> Bool {
        guard let xattr else { return false }
        return (try? xattr.withUnsafeBufferPointer { (n) throws(Errno) -> Int in
            try dir.entryXattr(name, n.baseAddress!, UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }) != nil
    }

    /// Reads the opaque marker of a directory in layer `layer`: the xattr `<ns>.overlay.opaque`
    /// with the exact value "y" (any other value or length is not opaque; "x" marks xattr
    /// whiteouts), or in a layer read in the OCI form, a `.wh..wh..opq` entry.
    func opacity(of dir: LayerDir, layer: Int) -> Opacity {
        let probe = names.opaqueProbe(dir, lower: !layers[layer].isUpper)
        switch probe {
        case .value([0x79]): return .opaque
        case .value([0x78]): return .holdsXattrWhiteouts
        default: break
        }
        if readsOCI(layer) && (try? dir.stat(FileName(".wh..wh..opq"))) != nil {
            return .opaque
        }
        return .none
    }
}

