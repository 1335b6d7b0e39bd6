import Glibc
import SystemPackage

extension UnionFileSystem {
    /// True when `listing` of `handle` still says in which layer each entry lives: the
    /// directory neither gained an upper part nor changed there since the listing was taken.
    package func listingIsCurrent(_ listing: DirectoryHandle.Listing, of handle: DirectoryHandle) -> Bool {
        let top = (try? handle.directory.directoryLayers())?.first?.layer
        return top == listing.layers.first?.layer && handle.isCurrent(listing)
    }

    /// The entry readdirplus gives the kernel for the listed `e`, counted as one lookup.
    ///
    /// The merge already found the layer holding the topmost occurrence, and nothing above it
    /// changed since (`current`), so a non-directory is probed in that layer alone: one
    /// `fstatat` instead of one or two per layer above it. Directories (which need every layer
    /// they merge) and anything the probe does not confirm take the ordinary lookup.
    ///
    /// `probed` is that probe's result when `DirectoryHandle.probeAhead` already made it.
    package func lookup(listed e: MergedEntry, in handle: DirectoryHandle, layers: [DirectoryPart], current: Bool,
                        probed: stat? = nil) throws(Errno) -> NodeEntry {
        try e.name.withFileName { (name) throws(Errno) -> NodeEntry in
            if current, let dl = stack.listedPart(e, in: layers),
               let st = try (probed != nil ? probed : stack.probeListed(name, in: dl)) {
                // The handle's own node: the kernel holds the directory while it reads it.
                return reference(ResolvedEntry(stat: st, topLayer: dl.layer, parentDir: dl.dir, layers: []),
                                 name: name, in: handle.directory, owned: e.name)
            }
            return try lookup(parent: handle.node, name: name)
        }
    }
}

extension LayerStack {
    /// The layer directory the merge found the listed `e` in, where one probe tells the
    /// attributes of a non-directory (nil for a directory, which needs every layer it merges,
    /// and for `.` and `..`).
    func listedPart(_ e: MergedEntry, in layers: [DirectoryPart]) -> DirectoryPart? {
        guard e.type != UInt8(DT_DIR), e.layer >= 0 else { return nil }
        return layers.first { $0.layer == e.layer }
    }

    /// The `lstat` of `name` in `dl` when it is there as a non-directory, else nil (gone, a
    /// whiteout, or a directory now: the ordinary lookup then decides).
    func probeListed(_ name: borrowing FileName, in dl: DirectoryPart) throws(Errno) -> stat? {
        guard case .entry(let st) = try probe(name, in: dl), st.st_mode & S_IFMT != S_IFDIR else { return nil }
        return st
    }
}
