/// Which xattr namespace carries `overlay.opaque` and `overlay.whiteout`: `trusted` as the
/// kernel does by default, `user` for rootless use (the kernel's `userxattr` option).
public enum XattrNamespace: String, Sendable {
    case trusted
    case user

    /// `"<ns>.overlay."`, the prefix of every private overlay xattr.
    public var overlayPrefix: String { rawValue + ".overlay." }
}

/// What the user asked to merge, before anything is opened.
public struct LayerStackConfiguration: Sendable, Equatable {
    /// Lower layer directories, top first.
    public var lowerdirs: [String]
    /// The copy-on-write upper directory; nil gives a read-only stack.
    public var upperdir: String?
    /// The staging directory on the upper's filesystem; required with `upperdir`.
    public var workdir: String?
    /// Namespace the overlay xattrs are written in (and read in, in the upper); nil chooses at
    /// open from the process's privilege (`XattrNamespace.forThisProcess`). Lowers are read in
    /// both namespaces whatever this is.
    public var xattrNamespace: XattrNamespace? = nil
    /// Read `.wh.NAME` and `.wh..wh..opq` (the OCI/AUFS form) in lower layers.
    public var ociWhiteouts: Bool = true
    /// How the upper records whiteouts and opaque directories; nil chooses at open by trying
    /// `mknod` of a whiteout device in the workdir (`WhiteoutForm.detect`).
    public var whiteoutForm: WhiteoutForm? = nil

    /// Most lower layers a stack may have. The kernel allows 500; each costs one descriptor.
    public static let maximumLowerLayers = 2048

    public init(lowerdirs: [String], upperdir: String? = nil, workdir: String? = nil,
                xattrNamespace: XattrNamespace? = nil, ociWhiteouts: Bool = true) {
        self.lowerdirs = lowerdirs
        self.upperdir = upperdir
        self.workdir = workdir
        self.xattrNamespace = xattrNamespace
        self.ociWhiteouts = ociWhiteouts
    }
}
