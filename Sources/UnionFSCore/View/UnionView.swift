import Glibc
import SystemPackage

/// The merged view of a layer stack, read in this process without mounting anything.
///
/// For tools that only need the merged tree (export, scanning, diff): they get exactly what a
/// mount would show, without FUSE. Paths are absolute or relative to the merged root and are
/// resolved like `lstat`: no symlink is followed, a symlink in the middle of a path is `ENOTDIR`.
public final class UnionView: Sendable {
    public let stack: LayerStack

    public init(_ configuration: LayerStackConfiguration) throws(ConfigurationError) {
        stack = try LayerStack(configuration)
    }

    public init(stack: LayerStack) { self.stack = stack }

    /// The merged root directory.
    public func root() throws(Errno) -> ResolvedEntry {
        let top = stack.layers[0].root
        var st = try top.stat()
        st.st_ino = ino_t(NodeID.root.rawValue)
        return ResolvedEntry(stat: st, topLayer: 0, parentDir: top, layers: stack.rootLayers)
    }

    /// Resolves a path in the merged view.
    public func resolve(_ path: String) throws(Errno) -> ResolvedEntry {
        var current = try root()
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            guard component != ".." else { throw .invalidArgument }
            guard current.isDirectory else { throw .notDirectory }
            current = try FileName.validating(String(component)) { (n) throws(Errno) -> ResolvedEntry in
                var r = try stack.resolve(n, in: current.layers)
                r.stat.st_ino = ino_t(stack.inodes.reported(FileID(r.stat)))
                return r
            }
        }
        return current
    }

    /// `lstat` of a path in the merged view, with the inode number the mount would report.
    public func stat(_ path: String) throws(Errno) -> stat {
        try resolve(path).stat
    }

    /// The merged listing of a directory (no `.` or `..`), in no particular order.
    public func list(_ path: String) throws(Errno) -> [MergedEntry] {
        let entry = try resolve(path)
        guard entry.isDirectory else { throw .notDirectory }
        return try stack.mergedListing(of: entry.layers)
    }

    /// The target of a symlink in the merged view.
    public func readlink(_ path: String) throws(Errno) -> String {
        let (entry, name) = try resolveWithName(path)
        guard entry.stat.st_mode & S_IFMT == S_IFLNK else { throw .invalidArgument }
        let bytes = try name.withFileName { (n) throws(Errno) in try entry.parentDir.readlink(n) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads up to `count` bytes at `offset` of a regular file in the merged view.
    public func read(_ path: String, offset: Int64 = 0, count: Int) throws(Errno) -> [UInt8] {
        let file = try open(path)
        var buf = [UInt8](repeating: 0, count: count)
        let n = try Errno.lift { try buf.withUnsafeMutableBytes { b in try Sys.pread(file.rawValue, b, offset) } }
        buf.removeLast(count - n)
        return buf
    }

    /// Reads a whole regular file in the merged view.
    public func readAll(_ path: String) throws(Errno) -> [UInt8] {
        let file = try open(path)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: Int64 = 0
        while true {
            let n = try Errno.lift { try chunk.withUnsafeMutableBytes { b in try Sys.pread(file.rawValue, b, offset) } }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            offset += Int64(n)
        }
    }

    /// Opens a regular file of the merged view read-only.
    public func open(_ path: String) throws(Errno) -> Descriptor {
        let (entry, name) = try resolveWithName(path)
        guard entry.stat.st_mode & S_IFMT == S_IFREG else {
            throw entry.isDirectory ? .isDirectory : .invalidArgument
        }
        return try name.withFileName { (n) throws(Errno) in
            try entry.parentDir.openFile(n, O_RDONLY | O_NONBLOCK)
        }
    }

    private func resolveWithName(_ path: String) throws(Errno) -> (ResolvedEntry, Name) {
        guard let last = path.split(separator: "/").last(where: { $0 != "." }) else { throw .isDirectory }
        return (try resolve(path), try Name(String(last)))
    }
}
