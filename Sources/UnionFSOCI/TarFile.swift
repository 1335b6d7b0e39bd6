import Glibc
import SystemPackage
import UnionFSCore

/// A plain tar of whole files written to a descriptor (image archives: blobs and JSON under
/// fixed names), through the same deterministic writer as layer commits.
public final class TarFile {
    private let tar: TarWriter

    public init(fd: Int32) throws(Errno) { tar = try TarWriter(sink: DescriptorSink(fd: fd)) }

    /// A directory entry (`path` without a trailing slash), 0755 root-owned, time 0.
    public func addDirectory(_ path: String) throws(Errno) {
        try tar.add(TarHeader(path: Array((path + "/").utf8), mode: Glibc.S_IFDIR | 0o755))
    }

    /// A regular file, 0644 root-owned, time 0, with the contents of `fd` (`size` bytes).
    public func addFile(_ path: String, from fd: Int32, size: Int64,
                        progress: (Int) -> Void = { _ in }) throws(Errno) {
        try tar.add(TarHeader(path: Array(path.utf8), mode: Glibc.S_IFREG | 0o644, size: size))
        try tar.addData(from: fd, size: size, progress: progress)
    }

    /// Writes the end of the tar.
    public func close() throws(Errno) { try tar.close() }
}

/// One entry of a tar read by `TarFileReader`.
public struct TarFileEntry: Sendable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, hardlink, other }
    public let path: String
    public let kind: Kind
    public let size: Int64
    /// The link target of a symlink or hard link.
    public let linkTarget: String?
}

/// Reads a tar of whole files (an image archive), plain or compressed, entry by entry.
public final class TarFileReader {
    private let input: ArchiveInput

    public init(path: String) throws(ConfigurationError) { input = try ArchiveInput(path: path) }

    /// The next entry, nil at the end; a damaged or truncated tar is an error.
    public func next() throws(ConfigurationError) -> TarFileEntry? {
        guard try input.next() else { return nil }
        let kind: TarFileEntry.Kind
        var target: [UInt8]? = nil
        if let link = input.hardlink {
            kind = .hardlink
            target = link
        } else {
            switch input.mode & S_IFMT {
            case S_IFREG: kind = .file
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symlink; target = input.symlink
            default: kind = .other
            }
        }
        return TarFileEntry(path: String(decoding: input.path, as: UTF8.self), kind: kind, size: input.size,
                            linkTarget: target.map { String(decoding: $0, as: UTF8.self) })
    }

    /// Writes the current entry's data to `fd` at the offsets the tar gives.
    public func copyData(to fd: Int32) throws(ConfigurationError) {
        try input.forEachBlock { (block, offset) throws(Errno) in
            var done = 0
            while done < block.count {
                done += try Sys.pwrite(fd, UnsafeRawBufferPointer(rebasing: block[done...]), offset + Int64(done))
            }
        }
    }
}
