import Glibc
import SystemPackage

extension UnionFileSystem {
    /// The upper directory of a merged directory node, copied up first if needed.
    func upperDirectory(of dir: Node) throws(Errno) -> LayerDir {
        try copyUp(dir)
        let layers = try dir.directoryLayers()
        guard layers[0].layer == 0 else { throw .ioError }
        return layers[0].dir
    }

    /// True when a lower layer of the directory `layers` (everything but the upper) still shows
    /// `name`: removing or moving it away from the upper must then leave a whiteout.
    func lowerShows(_ name: borrowing FileName, in layers: [DirectoryPart]) -> Bool {
        let lower = layers.filter { $0.layer != 0 }
        guard !lower.isEmpty else { return false }
        return (try? stack.resolve(name, in: lower)) != nil
    }

    /// Marks the upper directory `dir` opaque: `<ns>.overlay.opaque` = "y" (the value lives in
    /// static memory, so the buffer cannot dangle).
    func setOpaque(_ dir: LayerDir) throws(Errno) {
        if stack.ociUpper { try ociSetOpaque(dir); return }
        let y: StaticString = "y"
        try stack.names.opaque.withUnsafeBufferPointer { (n) throws(Errno) in
            try Sys.fsetxattr(dir.fd, n.baseAddress!, UnsafeRawBufferPointer(start: y.utf8Start, count: 1), 0)
        }
    }

    /// What the upper directory holds under `name`.
    func upperEntry(_ name: borrowing FileName, in upper: LayerDir) -> UpperEntry {
        if stack.ociUpper { return ociUpperEntry(name, in: upper) }
        guard let st = try? upper.stat(name) else { return .absent }
        if st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 { return .whiteout }
        return .entry(st)
    }

    /// The node for `id` when the kernel holds it, else a detached one for this request only.
    func nodeOrDetached(_ id: NodeID, parent: Node, name: borrowing FileName, entry: ResolvedEntry) -> Node {
        nodes.get(id) ?? Node(id: id, stack: stack, parent: parent, name: Name(name), entry: entry)
    }
}

/// An upper directory's entry under one name.
enum UpperEntry {
    case absent
    case whiteout
    case entry(stat)
}
