import Glibc
import SystemPackage
import UnionFSCore

/// Whiteouts and opaque markers a tar holds, kept aside until the whole tar has been read:
/// they apply to the layers below, wherever they appear in the tar.
struct LayerMarkers {
    var whiteouts: [(parent: [Name], name: Name)] = []
    var opaques: [[Name]] = []

    /// The overlay form, in the staging layer: a 0:0 device per whiteout (unless the tar also
    /// has an entry there: a directory then becomes opaque, as it replaces the lower one) and
    /// `<ns>.overlay.opaque=y` per opaque directory.
    func write(into root: LayerDir, namespace: XattrNamespace) throws(ConfigurationError) {
        var entries = StagedEntries(root: root, isRoot: true)
        var opaque = opaques
        for w in whiteouts {
            let dir = try entries.directory(w.parent, create: true)
            do {
                try w.name.withFileName { (n) throws(Errno) in
                    if let st = try? dir.stat(n) {
                        if st.st_mode & S_IFMT == S_IFDIR { opaque.append(w.parent + [w.name]) }
                        return
                    }
                    try Sys.mknodat(dir.fd, n.cString, S_IFCHR, 0)
                }
            } catch .notPermitted {
                throw ConfigurationError("a whiteout device needs root (CAP_MKNOD): apply with --flatten instead")
            } catch {
                throw UnionFSError("whiteout '\(TarPath.display(w.parent + [w.name]))'", wrapping: error)
            }
        }
        let xattr = namespace.overlayPrefix + "opaque"
        for path in opaque {
            let dir = try entries.directory(path, create: true)
            do {
                try withProcFDPath(dir.descriptor) { (p) throws(Errno) in
                    try Errno.lift { try [UInt8(ascii: "y")].withUnsafeBytes { v in try Sys.pathSetxattr(p, xattr, v, 0) } }
                }
            } catch {
                throw UnionFSError("opaque directory '\(TarPath.display(path))'", wrapping: error)
            }
        }
    }

    /// The OCI form kept as files, for lowers read with OCI whiteouts (the default) where
    /// whiteout devices cannot be made: an empty `.wh.NAME` per whiteout (unless the tar also has
    /// an entry there: a directory then gets the opaque marker instead) and an empty
    /// `.wh..wh..opq` in each opaque directory.
    func writeOCI(into root: LayerDir) throws(ConfigurationError) {
        var entries = StagedEntries(root: root, isRoot: false)
        var opaque = opaques
        for w in whiteouts {
            let dir = try entries.directory(w.parent, create: true)
            do {
                let exists = try w.name.withFileName { (n) throws(Errno) -> Bool in
                    guard let st = try? dir.stat(n) else { return false }
                    if st.st_mode & S_IFMT == S_IFDIR { opaque.append(w.parent + [w.name]) }
                    return true
                }
                if !exists { try Self.marker(in: dir, Array(".wh.".utf8) + w.name.bytes) }
            } catch {
                throw UnionFSError("whiteout '\(TarPath.display(w.parent + [w.name]))'", wrapping: error)
            }
        }
        for path in opaque {
            let dir = try entries.directory(path, create: true)
            do { try Self.marker(in: dir, Array(".wh..wh..opq".utf8)) } catch {
                throw UnionFSError("opaque directory '\(TarPath.display(path))'", wrapping: error)
            }
        }
    }

    /// An empty marker file; a name too long for a directory entry is ENAMETOOLONG.
    private static func marker(in dir: LayerDir, _ name: [UInt8]) throws(Errno) {
        guard name.count <= 255 else { throw .fileNameTooLong }
        try Errno.lift {
            try (name + [0]).withUnsafeBufferPointer { p in
                try p.withMemoryRebound(to: CChar.self) { c in
                    try FileName.validating(c.baseAddress!) { (n) throws(Errno) in
                        try dir.openFile(n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600).close()
                    }
                }
            }
        }
    }

    /// The flattened form: deletes from `target` what the whiteouts name and empties the
    /// opaque directories. Paths that do not lead to a directory in the target hide nothing.
    func delete(from target: LayerDir) throws(Errno) {
        for path in opaques {
            guard let dir = open(path, in: target) else { continue }
            try Staging.removeContents(of: dir)
        }
        for w in whiteouts {
            guard let dir = open(w.parent, in: target) else { continue }
            try w.name.withFileName { (n) throws(Errno) in
                guard (try? dir.stat(n)) != nil else { return }
                try Staging.removeTree(in: dir, n)
            }
        }
    }

    private func open(_ path: [Name], in root: LayerDir) -> LayerDir? {
        var dir = root
        for part in path {
            guard let d = try? part.withFileName({ (n) throws(Errno) in try dir.openChild(n) }) else { return nil }
            dir = d
        }
        return dir
    }
}
