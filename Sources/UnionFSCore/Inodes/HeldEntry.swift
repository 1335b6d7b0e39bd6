import Glibc

/// What a node keeps of the `ResolvedEntry` it was found as: where it lives and its file type,
/// not the entry's `stat`.
///
/// Why not the `stat`: after a walk of a root filesystem the kernel holds a node for every one
/// of its hundred thousand entries, and a `stat` is 144 bytes, about a third of a node. Nothing
/// needs it afterwards: attributes are read fresh for every getattr (`Node.attributes`), the
/// node id is fixed when the node is made, and a copy-up stats its source when it copies it
/// (`StagedCopy`). The file type never changes for a node (a different file at the name is a
/// different node).
struct HeldEntry {
    /// `st_mode & S_IFMT` of the topmost entry.
    let fileType: mode_t
    private var top: Int32
    /// The directory holding the topmost entry, in that layer.
    var parentDir: LayerDir
    /// For a directory: its layers, top first, cut at the first opaque one. Empty otherwise.
    var layers: [DirectoryPart]

    init(_ e: ResolvedEntry) {
        fileType = e.stat.st_mode & S_IFMT
        top = Int32(e.topLayer)
        parentDir = e.parentDir
        layers = e.layers
    }

    /// Layer index of the topmost entry.
    var topLayer: Int {
        get { Int(top) }
        set { top = Int32(newValue) }
    }
    var isDirectory: Bool { fileType == S_IFDIR }
    var isRegularFile: Bool { fileType == S_IFREG }
}
