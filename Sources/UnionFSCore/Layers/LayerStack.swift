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
    /// The xattr names this stack reads, as C strings.
    let names: OverlayXattrNames
    /// The merged root's layers, read once at open.
    let rootDirLayers: [DirLayer]

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
        let names = OverlayXattrNames(c.xattrNamespace)
        self.rootDirLayers = indexed.map { l in
            let probe = names.opaque.withUnsafeBufferPointer { l.root.xattrPrefix($0.baseAddress!, limit: 2) }
            return DirLayer(layer: l.index, dir: l.root, holdsXattrWhiteouts: !l.isUpper && probe == .value([0x78]))
        }
        self.staging = staging
        self.inodes = InodeNumbers(devices: self.layers.map(\.device))
        self.names = names
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
struct OverlayXattrNames: Sendable {
    let opaque: [CChar]
    let whiteout: [CChar]
    let prefix: [UInt8]

    init(_ ns: XattrNamespace) {
        opaque = Array((ns.overlayPrefix + "opaque").utf8CString)
        whiteout = Array((ns.overlayPrefix + "whiteout").utf8CString)
        prefix = Array(ns.overlayPrefix.utf8)
    }

    /// True when the xattr name (bytes, no NUL) is one of this namespace's private overlay xattrs.
    func isPrivate(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count >= prefix.count else { return false }
        return prefix.withUnsafeBytes { memcmp($0.baseAddress!, name.baseAddress!, prefix.count) == 0 }
    }
}
