import Glibc
import SystemPackage
import UnionFS

/// Unpacks an image archive (a tar of an OCI layout or a docker-archive) into a fresh
/// directory, keeping only what such archives hold: directories and regular files under
/// relative names. Symlinks and hard links (docker archives link repeated layers) become hard
/// links to the file they name inside the archive; one that leads outside is an error.
enum ArchiveExtract {
    /// The most entries an image archive may have: far more than any image needs.
    static let maximumEntries = 1_000_000

    static func extract(_ archive: String, into dir: String) throws {
        let reader = try TarFileReader(path: archive)
        var links: [(path: [String], target: [String])] = []
        var count = 0
        while let e = try reader.next() {
            count += 1
            guard count <= maximumEntries else { throw UnionFSError("archive '\(archive)': more than \(maximumEntries) entries") }
            let parts = try components(e.path, archive: archive)
            if parts.isEmpty { continue }  // "./"
            switch e.kind {
            case .directory:
                try Files.makeDirectories(dir + "/" + parts.joined(separator: "/"), mode: 0o700)
            case .file:
                try Files.makeDirectories(dir + "/" + parts.dropLast().joined(separator: "/"), mode: 0o700)
                let path = dir + "/" + parts.joined(separator: "/")
                try? Sys.unlink(path)
                let fd = try Files.io("archive entry '\(e.path)'") { () throws(Errno) in
                    try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
                }
                defer { Sys.close(fd) }
                try reader.copyData(to: fd)
                try Files.io("archive entry '\(e.path)'") { () throws(Errno) in try Sys.ftruncate(fd, Int64(e.size)) }
            case .symlink:
                // Relative to the link's directory.
                let base = Array(parts.dropLast())
                let target = e.linkTarget ?? ""
                guard !target.hasPrefix("/") else { throw UnionFSError("archive entry '\(e.path)' links outside the archive ('\(target)')") }
                links.append((parts, try resolve(base, target, entry: e.path)))
            case .hardlink:
                links.append((parts, try resolve([], e.linkTarget ?? "", entry: e.path)))
            case .other:
                throw UnionFSError("archive entry '\(e.path)': not a file or directory")
            }
        }
        // Links may name links: resolve in rounds until nothing changes.
        var pending = links
        while !pending.isEmpty {
            var next: [(path: [String], target: [String])] = []
            for l in pending {
                let target = dir + "/" + l.target.joined(separator: "/")
                guard Files.isRegularFile(target) else { next.append(l); continue }
                let path = dir + "/" + l.path.joined(separator: "/")
                try Files.makeDirectories(dir + "/" + l.path.dropLast().joined(separator: "/"), mode: 0o700)
                try? Sys.unlink(path)
                try Files.io("archive link '\(l.path.joined(separator: "/"))'") { () throws(Errno) in
                    try Sys.linkat(AT_FDCWD, target, AT_FDCWD, path, 0)
                }
            }
            if next.count == pending.count {
                throw UnionFSError("archive link '\(next[0].path.joined(separator: "/"))' names no file in the archive")
            }
            pending = next
        }
    }

    /// A relative entry name as components; "." dropped, anything leading out rejected.
    static func components(_ path: String, archive: String) throws -> [String] {
        guard !path.hasPrefix("/") else { throw UnionFSError("archive entry '\(path)' has an absolute name") }
        var parts: [String] = []
        for p in path.split(separator: "/") where p != "." {
            guard p != "..", p.utf8.count <= 255 else { throw UnionFSError("archive entry '\(path)' leads outside the archive") }
            parts.append(String(p))
        }
        return parts
    }

    /// A link target resolved lexically against `base`, staying inside the archive.
    private static func resolve(_ base: [String], _ target: String, entry: String) throws -> [String] {
        var parts = base
        for p in target.split(separator: "/") where p != "." {
            if p == ".." {
                guard !parts.isEmpty else { throw UnionFSError("archive entry '\(entry)' links outside the archive ('\(target)')") }
                parts.removeLast()
            } else {
                parts.append(String(p))
            }
        }
        guard !parts.isEmpty else { throw UnionFSError("archive entry '\(entry)' links to the archive root") }
        return parts
    }
}
