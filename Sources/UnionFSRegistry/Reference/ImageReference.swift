import UnionFS
import UnionFSImages

/// An image reference as Docker reads it: `[REGISTRY/]REPO[:TAG|@sha256:DIGEST]`.
///
/// - The first component is a registry when it contains `.` or `:`, or is `localhost`
///   (`localhost:5000/app`, `ghcr.io/org/app`, `10.0.0.1:5000/app`); otherwise the registry is
///   `docker.io` (`alpine`, `org/app`).
/// - On docker.io a one-component repository is an official image: `alpine` is
///   `docker.io/library/alpine` (the API lives at `registry-1.docker.io`).
/// - No tag and no digest means `:latest`; with both (`app:1@sha256:…`) the digest decides and
///   the tag is kept as the name.
/// - Repository components are lowercase letters and digits joined by `.`, `_`, `__` or `-`;
///   tags are up to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
    /// As users write it: `docker.io`, `localhost:5000`.
    public var registry: String
    /// With `library/` for docker.io's official images.
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    /// The host the API is at (docker.io's is registry-1.docker.io).
    public var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// What to put after `/manifests/`: the digest when pinned, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The full name: `registry/repository:tag` or `registry/repository@digest`.
    public var description: String {
        let base = registry + "/" + repository
        if let digest { return base + "@" + digest.description }
        return base + ":" + (tag ?? "latest")
    }

    /// The name the store records: with the tag when one was given (or implied).
    public var storeName: String {
        if tag == nil, let digest { return registry + "/" + repository + "@" + digest.description }
        return registry + "/" + repository + ":" + (tag ?? "latest")
    }

    public init(registry: String, repository: String, tag: String?, digest: Digest?) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    public static func parse(_ text: String) throws -> ImageReference {
        func bad(_ why: String) -> ImageError { ImageError("image reference '\(text)': \(why)") }
        var rest = Substring(text)
        var digest: Digest? = nil
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard let parsed = Digest(d) else { throw bad("'\(d)' is not a sha256 digest (sha256: and 64 lowercase hex digits)") }
            digest = parsed
            rest = rest[..<at]
        }
        var tag: String? = nil
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = "docker.io"
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" {
            registry = first
            components.removeFirst()
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = "docker.io" }
        guard !components.isEmpty, components.allSatisfy(isRepositoryComponent) else {
            throw bad("the repository must be lowercase letters and digits separated by '/', '.', '_' or '-'")
        }
        if registry == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        if let tag, !isTag(tag) { throw bad("tag '\(tag)' is not 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)") }
        let repository = components.joined(separator: "/")
        guard registry.utf8.count + repository.utf8.count < 256 else { throw bad("the name is longer than 255 characters") }
        return ImageReference(registry: registry, repository: repository, tag: digest == nil ? (tag ?? "latest") : tag, digest: digest)
    }

    static func isRepositoryComponent(_ s: String) -> Bool {
        let b = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) }
        guard let f = b.first, let l = b.last, alnum(f), alnum(l) else { return false }
        var i = 0
        while i < b.count {
            if alnum(b[i]) { i += 1; continue }
            // A separator: ".", "_", "__", or one or more "-".
            var j = i
            if b[i] == 0x2d { while j < b.count && b[j] == 0x2d { j += 1 } }
            else if b[i] == 0x5f { j += (j + 1 < b.count && b[j + 1] == 0x5f) ? 2 : 1 }
            else if b[i] == 0x2e { j += 1 }
            else { return false }
            guard j < b.count, alnum(b[j]) else { return false }
            i = j
        }
        return true
    }

    static func isTag(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...128).contains(b.count), b[0] != 0x2e, b[0] != 0x2d else { return false }
        return b.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2e || $0 == 0x2d }
    }
}
