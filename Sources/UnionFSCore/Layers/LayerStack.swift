import Glibc
import SystemPackage

/// One layer of an open stack.
public struct Layer: Sendable {
    /// Position in the stack: 0 is the top (the upper when there is one).
    public let index: Int
    /// The path the user gave, for messages only.
    public let path: String
    public let root: LayerDir
    public let isUpper: Bool
    /// The filesystem the layer root is on.
    public let device: UInt64
}

/// An open, validated stack of layers: the upper (if any) at index 0, then the lowers top first.
///
/// Opening checks everything a user can get wrong and reports the first problem by name. After
/// that, every access goes through the layer roots' descriptors; no path string is used again.
public final class LayerStack: Sendable {
    public let configuration: LayerStackConfiguration
    public let layers: [Layer]
    /// The workdir's staging directory (`workdir/work`, as the kernel names it), when writable.
    public let staging: LayerDir?
    public let inodes: InodeNumbers

    public var upper: Layer? { layers.first.flatMap { $0.isUpper ? $0 : nil } }
    public var isWritable: Bool { upper != nil }
    /// The namespace of the overlay xattrs this stack writes (and reads in the upper).
    public let xattrNamespace: XattrNamespace
    /// True when `xattrNamespace` was chosen from the process's privilege, not given.
    public let xattrNamespaceDetected: Bool
    /// How the upper records whiteouts and opaque directories (`.chardev` without an upper).
    public let whiteoutForm: WhiteoutForm
    /// Why `whiteoutForm` is what it is, for `-d`: given by an option, or what the probe found.
    public let whiteoutFormReason: String
    /// The upper keeps (and is read in) the OCI form.
    let ociUpper: Bool
    /// The xattr names this stack reads, as C strings.
    let names: OverlayXattrNames
    /// True when layer `layer` is read in the OCI form: a lower unless `no_oci_whiteouts`, the
    /// upper when it keeps that form.
    @inline(__always)
    func readsOCI(_ layer: Int) -> Bool {
        layers[layer].isUpper ? ociUpper : configuration.ociWhiteouts
    }
    /// Which xattrs are the overlay's, and how the rest are stored (escaping).
    let overlayXattrs: OverlayXattrs
    /// The merged root's layers, read once at open.
    let rootParts: [DirectoryPart]

    public init(_ configuration: LayerStackConfiguration) throws(ConfigurationError) {
        self.configuration = configuration
        let c = configuration
        guard !c.lowerdirs.isEmpty else { throw ConfigurationError("lowerdir is empty: give at least one lower directory") }
        guard c.lowerdirs.count <= LayerStackConfiguration.maximumLowerLayers else {
            throw ConfigurationError("too many lower layers: \(c.lowerdirs.count) (at most \(LayerStackConfiguration.maximumLowerLayers))")
        }
        if c.upperdir != nil && c.workdir == nil { throw ConfigurationError("upperdir needs a workdir") }
        if c.upperdir == nil && c.workdir != nil { throw ConfigurationError("workdir given without upperdir") }

        var layers: [Layer] = []
        var seen: [FileID: String] = [:]
        func open(_ path: String, role: String, isUpper: Bool) throws(ConfigurationError) -> Layer {
            guard !path.isEmpty else { throw ConfigurationError("\(role): empty path") }
            let dir: LayerDir
            do { dir = try LayerDir.openRoot(path: path) } catch {
                throw ConfigurationError("\(role) '\(path)': \(Self.describe(error, path: path))")
            }
            let st: stat
            do { st = try dir.stat() } catch { throw ConfigurationError("\(role) '\(path)': \(error)") }
            // Opening needs read permission only; every lookup below needs search (x), and the
            // upper and workdir take new entries (w). Checked with the effective ids, as the
            // kernel will check each request.
            let needed = isUpper || role == "workdir" ? R_OK | W_OK | X_OK : R_OK | X_OK
            if faccessat(AT_FDCWD, path, needed, AT_EACCESS) != 0 {
                let what = needed & W_OK != 0 ? "read, write and search" : "read and search"
                throw ConfigurationError("\(role) '\(path)': uid \(geteuid()) may not \(what) it "
                    + "(mode 0\(String(st.st_mode & 0o7777, radix: 8)), owner \(st.st_uid):\(st.st_gid))")
            }
            let id = FileID(st)
            if let other = seen[id] {
                throw ConfigurationError("\(role) '\(path)' is the same directory as '\(other)'")
            }
            seen[id] = path
            return Layer(index: layers.count, path: path, root: dir, isUpper: isUpper, device: UInt64(st.st_dev))
        }
        var staging: LayerDir? = nil
        if let up = c.upperdir, let wd = c.workdir {
            let upper = try open(up, role: "upperdir", isUpper: true)
            layers.append(upper)
            let work = try open(wd, role: "workdir", isUpper: false)
            guard work.device == upper.device else {
                throw ConfigurationError("workdir '\(wd)' is not on the same filesystem as upperdir '\(up)'")
            }
            let upperID: FileID, workID: FileID
            do { upperID = FileID(try upper.root.stat()) } catch { throw ConfigurationError("upperdir '\(up)': \(error)") }
            do { workID = FileID(try work.root.stat()) } catch { throw ConfigurationError("workdir '\(wd)': \(error)") }
            if Self.isInside(work.root, upperID) {
                throw ConfigurationError("workdir '\(wd)' is inside upperdir '\(up)'")
            }
            if Self.isInside(upper.root, workID) {
                throw ConfigurationError("upperdir '\(up)' is inside workdir '\(wd)'")
            }
            do { staging = try Staging.prepare(in: work.root) } catch {
                throw ConfigurationError("workdir '\(wd)': cannot prepare staging: \(error)")
            }
        }
        for path in c.lowerdirs {
            layers.append(try open(path, role: "lowerdir", isUpper: false))
        }
        // Re-index: the workdir was opened between the upper and the lowers.
        let indexed = layers.enumerated().map { i, l in
            Layer(index: i, path: l.path, root: l.root, isUpper: l.isUpper, device: l.device)
        }
        self.layers = indexed
        // Roots are never opaque (the kernel merges every root) but a lower root may hold xattr
        // whiteouts (opaque value "x"), which readdir must then hide.
        let ns = c.xattrNamespace ?? XattrNamespace.forThisProcess
        let names = OverlayXattrNames(ns)
        self.rootParts = indexed.map { l in
            let probe = names.opaqueProbe(l.root, lower: !l.isUpper)
            return DirectoryPart(layer: l.index, dir: l.root, holdsXattrWhiteouts: !l.isUpper && probe == .value([0x78]))
        }
        self.xattrNamespace = ns
        self.xattrNamespaceDetected = c.xattrNamespace == nil
        self.staging = staging
        if let form = c.whiteoutForm {
            (whiteoutForm, whiteoutFormReason) = (form, "given by an option")
        } else if let staging {
            (whiteoutForm, whiteoutFormReason) = WhiteoutForm.detect(in: staging)
        } else {
            (whiteoutForm, whiteoutFormReason) = (.chardev, "no upper")
        }
        ociUpper = staging != nil && whiteoutForm == .oci
        self.inodes = InodeNumbers(devices: self.layers.map(\.device))
        self.names = names
        self.overlayXattrs = OverlayXattrs(ns)
    }

    /// True when `dir` is `target` or below it, walking `..` up to the root.
    private static func isInside(_ dir: LayerDir, _ target: FileID) -> Bool {
        var current = dir
        for _ in 0..<4096 {
            guard let st = try? current.stat() else { return false }
            if FileID(st) == target { return true }
            guard let parent = try? current.openParent(), let pst = try? parent.stat() else { return false }
            if FileID(pst) == FileID(st) { return false }  // reached "/"
            current = parent
        }
        return false
    }

    private static func describe(_ e: Errno, path: String) -> String {
        switch e {
        case .noSuchFileOrDirectory: return "no such directory"
        case .notDirectory: return "not a directory"
        case .permissionDenied: return "permission denied"
        default: return "\(e)"
        }
    }
}

/// A (device, inode) pair: the identity of a file.
public struct FileID: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64
    public init(device: UInt64, inode: UInt64) { self.device = device; self.inode = inode }
    public init(_ st: stat) { device = UInt64(st.st_dev); inode = UInt64(st.st_ino) }
}

/// The private overlay xattr names for one namespace, kept as C strings for hot paths.
///
/// Markers are written in the stack's namespace; lowers are read in both, so that layers made by
/// root (`trusted.overlay.*`) and by rootless kernel overlayfs or podman's native rootless
/// driver (`user.overlay.*`) both merge. The stack's own namespace is read first.
struct OverlayXattrNames: Sendable {
    let opaque: [CChar]
    let whiteout: [CChar]
    /// The other namespace's names, read in lower layers only; nil where this process cannot
    /// read them (`trusted.*` without CAP_SYS_ADMIN always reads as absent: no call is spent).
    let otherOpaque: [CChar]?
    let otherWhiteout: [CChar]?

    init(_ ns: XattrNamespace) {
        let other: XattrNamespace = ns == .trusted ? .user : .trusted
        let readable = other == .user || Privilege.current.canWriteTrustedXattrs
        opaque = Array((ns.overlayPrefix + "opaque").utf8CString)
        whiteout = Array((ns.overlayPrefix + "whiteout").utf8CString)
        otherOpaque = readable ? Array((other.overlayPrefix + "opaque").utf8CString) : nil
        otherWhiteout = readable ? Array((other.overlayPrefix + "whiteout").utf8CString) : nil
    }

    /// The first two bytes of a directory's opaque marker: the stack's namespace, then in a
    /// lower the other one when the first is absent.
    func opaqueProbe(_ dir: LayerDir, lower: Bool) -> XattrProbe {
        let probe = opaque.withUnsafeBufferPointer { dir.xattrPrefix($0.baseAddress!, limit: 2) }
        guard lower, probe == .absent, let otherOpaque else { return probe }
        return otherOpaque.withUnsafeBufferPointer { dir.xattrPrefix($0.baseAddress!, limit: 2) }
    }
}
