import Glibc
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
            guard count <= maximumEntries else { throw ImageError("archive '\(archive)': more than \(maximumEntries) entries") }
            let parts = try components(e.path, archive: archive)
            if parts.isEmpty { continue }  // "./"
            switch e.kind {
            case .directory:
                try Files.makeDirectories(dir + "/" + parts.joined(separator: "/"), mode: 0o700)
            case .file:
                try Files.makeDirectories(dir + "/" + parts.dropLast().joined(separator: "/"), mode: 0o700)
                let path = dir + "/" + parts.joined(separator: "/")
                unlink(path)
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw ImageError("archive entry '\(e.path)': \(Files.errorText())") }
                defer { close(fd) }
                try reader.copyData(to: fd)
                guard ftruncate(fd, off_t(e.size)) == 0 else { throw ImageError("archive entry '\(e.path)': \(Files.errorText())") }
            case .symlink:
                // Relative to the link's directory.
                let base = Array(parts.dropLast())
                let target = e.linkTarget ?? ""
                guard !target.hasPrefix("/") else { throw ImageError("archive entry '\(e.path)' links outside the archive ('\(target)')") }
                links.append((parts, try resolve(base, target, entry: e.path)))
            case .hardlink:
                links.append((parts, try resolve([], e.linkTarget ?? "", entry: e.path)))
            case .other:
                throw ImageError("archive entry '\(e.path)': not a file or directory")
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
                unlink(path)
                guard link(target, path) == 0 else { throw ImageError("archive link '\(l.path.joined(separator: "/"))': \(Files.errorText())") }
            }
            if next.count == pending.count {
                throw ImageError("archive link '\(next[0].path.joined(separator: "/"))' names no file in the archive")
            }
            pending = next
        }
    }

    /// A relative entry name as components; "." dropped, anything leading out rejected.
    static func components(_ path: String, archive: String) throws -> [String] {
        guard !path.hasPrefix("/") else { throw ImageError("archive entry '\(path)' has an absolute name") }
        var parts: [String] = []
        for p in path.split(separator: "/") where p != "." {
            guard p != "..", p.utf8.count <= 255 else { throw ImageError("archive entry '\(path)' leads outside the archive") }
            parts.append(String(p))
        }
        return parts
    }

    /// A link target resolved lexically against `base`, staying inside the archive.
    private static func resolve(_ base: [String], _ target: String, entry: String) throws -> [String] {
        var parts = base
        for p in target.split(separator: "/") where p != "." {
            if p == ".." {
                guard !parts.isEmpty else { throw ImageError("archive entry '\(entry)' links outside the archive ('\(target)')") }
                parts.removeLast()
            } else {
                parts.append(String(p))
            }
        }
        guard !parts.isEmpty else { throw ImageError("archive entry '\(entry)' links to the archive root") }
        return parts
    }
}
