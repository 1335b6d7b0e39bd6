import Glibc
import SystemPackage
import UnionFSCore

/// How an applied layer lands in the target directory.
public enum ApplyMode: Sendable, Equatable {
    /// A layer dir for use as a lower: whiteouts become 0:0 character devices and opaque
    /// markers `<ns>.overlay.opaque=y`. The target must be absent or empty.
    case layer(XattrNamespace)
    /// A layer dir that keeps the OCI markers as empty files (`.wh.NAME`, `.wh..wh..opq`):
    /// for mounts that read OCI whiteouts in lowers (this one's default) when whiteout devices
    /// cannot be made (rootless). The target must be absent or empty.
    case ociLayer
    /// Onto an existing tree: what whiteouts name is deleted, opaque directories are emptied of
    /// what was there, then the layer's entries replace or join the target's.
    case flatten
}

/// What an apply did.
public struct ApplyResult: Sendable, Equatable {
    public let entries: Int
    public let bytes: Int64
    /// The blob's digests, when the apply was asked to check them.
    public var digests: LayerBlobDigests? = nil
}

/// Unpacks an OCI layer tar (docs/SEMANTICS.md §5) into a directory, all or nothing.
///
/// The whole tar is first unpacked into a staging directory next to the target (same
/// filesystem), with every name checked (`TarPath`) and every entry created one component at a
/// time without following symlinks (`StagedEntries`). Whiteouts and opaque markers are only
/// recorded, wherever they appear in the tar. Only when the whole tar has been read does
/// anything touch the target; a rejected tar leaves it exactly as it was.
public enum LayerApply {
    /// With `expect`, the blob's digests are computed while it is read and checked before
    /// anything lands in the target: a mismatch leaves the target as it was.
    public static func apply(tar: String, to target: String, mode: ApplyMode,
                             expect: LayerExpectation? = nil,
                             progress: LayerProgress? = nil) throws(ConfigurationError) -> ApplyResult {
        let (parentPath, targetName) = try split(target)
        let parent: LayerDir
        do { parent = try LayerDir.openRoot(path: parentPath) } catch {
            throw UnionFSError("'\(parentPath)'", wrapping: error)
        }
        let existing = try targetState(parent, targetName, target: target, mode: mode)
        let input: ArchiveInput
        if let expect {
            input = try ArchiveInput(stream: VerifyingStream(path: tar, expect: expect))
        } else {
            input = try ArchiveInput(path: tar)
        }
        guard let stagingName = try? Name(".\(targetName.description.prefix(200)).apply-\(getpid())") else {
            throw ConfigurationError("target '\(target)': name unusable for a staging directory")
        }
        let staging = try stagingDirectory(parent, stagingName, target: target)
        var done = false
        defer {
            if !done { _ = try? stagingName.withFileName { (n) throws(Errno) in try Staging.removeTree(in: parent, n) } }
        }
        var unpack = Unpack(entries: StagedEntries(root: staging, isRoot: Sys.geteuid() == 0), progress: progress)
        do {
            while try input.next() { try unpack.add(input) }
            try unpack.finishDirectories()
        } catch {
            // A damaged blob often breaks the tar before its digest is known: say why.
            if let stream = input.stream { _ = try stream.finish() }
            throw error
        }
        var digests: LayerBlobDigests? = nil
        if let stream = input.stream { digests = try stream.finish() }
        if mode == .flatten && existing {
            let dest: LayerDir
            do { dest = try targetName.withFileName { (n) throws(Errno) in try parent.openChild(n) } } catch {
                throw UnionFSError("'\(target)'", wrapping: error)
            }
            try Flatten.checkImplicit(unpack.entries.implicitDirectories, against: dest)
        }
        do {
            switch mode {
            case .layer, .ociLayer:
                if case .layer(let ns) = mode {
                    try unpack.markers.write(into: staging, namespace: ns)
                } else {
                    try unpack.markers.writeOCI(into: staging)
                }
                try stagingName.withFileName { (s) throws(Errno) in
                    try Sys.fchmodat(parent.fd, s.cString, 0o755)
                    try targetName.withFileName { (t) throws(Errno) in
                        try Sys.renameat2(parent.fd, s.cString, parent.fd, t.cString, existing ? 0 : Sys.renameNoReplace)
                    }
                }
            case .flatten:
                if !existing { try targetName.withFileName { (t) throws(Errno) in try Sys.mkdirat(parent.fd, t.cString, 0o755) } }
                let dest = try targetName.withFileName { (n) throws(Errno) in try parent.openChild(n) }
                try unpack.markers.delete(from: dest)
                try Flatten.merge(staging, into: dest)
                try stagingName.withFileName { (n) throws(Errno) in try Staging.removeTree(in: parent, n) }
            }
        } catch {
            throw UnionFSError("'\(target)'", wrapping: error)
        }
        done = true
        return ApplyResult(entries: unpack.count, bytes: unpack.bytes, digests: digests)
    }

    /// Splits the target into its parent directory and last component.
    private static func split(_ target: String) throws(ConfigurationError) -> (String, Name) {
        var t = target
        while t.count > 1 && t.hasSuffix("/") { t.removeLast() }
        let slash = t.lastIndex(of: "/")
        let parent = slash.map { $0 == t.startIndex ? "/" : String(t[..<$0]) } ?? "."
        let last = slash.map { String(t[t.index(after: $0)...]) } ?? t
        guard let name = try? Name(last), !name.isDotOrDotDot else {
            throw ConfigurationError("target '\(target)': give a directory name, not '\(last)'")
        }
        return (parent, name)
    }

    /// Whether the target exists, checking it suits the mode: a layer target must be empty.
    private static func targetState(_ parent: LayerDir, _ name: Name, target: String,
                                    mode: ApplyMode) throws(ConfigurationError) -> Bool {
        let st: stat
        do { st = try name.withFileName { (n) throws(Errno) in try parent.stat(n) } } catch .noSuchFileOrDirectory {
            return false
        } catch { throw UnionFSError("target '\(target)'", wrapping: error) }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw ConfigurationError("target '\(target)' is not a directory") }
        if mode != .flatten {
            var empty = true
            do {
                let dir = try name.withFileName { (n) throws(Errno) in try parent.openChild(n) }
                try Sys.forEachEntry(in: dir.fd) { _ in empty = false }
            } catch { throw UnionFSError("target '\(target)'", wrapping: error) }
            guard empty else {
                throw ConfigurationError("target '\(target)' is not empty: a layer is unpacked into a new directory (or use --flatten)")
            }
        }
        return true
    }

    private static func stagingDirectory(_ parent: LayerDir, _ name: Name, target: String) throws(ConfigurationError) -> LayerDir {
        do {
            return try name.withFileName { (n) throws(Errno) -> LayerDir in
                if (try? parent.stat(n)) != nil { try Staging.removeTree(in: parent, n) }  // a crashed run's
                try Sys.mkdirat(parent.fd, n.cString, 0o700)
                return try parent.openChild(n)
            }
        } catch {
            throw UnionFSError("cannot create a staging directory next to '\(target)'", wrapping: error)
        }
    }
}
