import Foundation
import Glibc
import UnionFS
import UnionFSImages

/// A user name and password (or token) for a registry.
public struct Credentials: Sendable, Equatable {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// The credential files users already have, in the format podman, skopeo and docker share:
/// `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`. Read in order:
/// `--authfile`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` (podman's;
/// /run/containers/UID/auth.json when XDG_RUNTIME_DIR is unset),
/// `$XDG_CONFIG_HOME/containers/auth.json` (~/.config), `~/.docker/config.json`; the first
/// file naming the registry wins. `image login` writes the first of those (podman's place),
/// keeping whatever else the file holds. Credential helpers (`credsStore`) are not run.
public struct AuthFiles: Sendable {
    public var explicit: String?

    public init(explicit: String? = nil) { self.explicit = explicit }

    static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The files read, in order.
    public var readOrder: [String] {
        if let explicit { return [explicit] }
        var out: [String] = []
        if let f = Self.env("REGISTRY_AUTH_FILE") { out.append(f) }
        out.append(writePath)
        let home = Self.env("HOME") ?? "/root"
        out.append((Self.env("XDG_CONFIG_HOME") ?? home + "/.config") + "/containers/auth.json")
        out.append((Self.env("DOCKER_CONFIG") ?? home + "/.docker") + "/config.json")
        return out
    }

    /// Where `login` writes.
    public var writePath: String {
        if let explicit { return explicit }
        if let f = Self.env("REGISTRY_AUTH_FILE") { return f }
        if let run = Self.env("XDG_RUNTIME_DIR") { return run + "/containers/auth.json" }
        return "/run/containers/\(getuid())/auth.json"
    }

    /// The keys a registry may be filed under (docker.io has several spellings).
    static func keys(for registry: String) -> [String] {
        if registry == "docker.io" {
            return ["docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
        }
        return [registry, "https://" + registry, "http://" + registry]
    }

    /// The credentials for `registry`, or nil for anonymous access.
    public func credentials(for registry: String) throws -> Credentials? {
        for path in readOrder where access(path, F_OK) == 0 {
            let auths = try Self.read(path)["auths"] as? [String: Any] ?? [:]
            // Keys may carry a scheme or a path (`https://host/v1/`): compare hosts.
            var byHost: [String: Any] = [:]
            for (k, v) in auths { byHost[Self.host(k)] = byHost[Self.host(k)] ?? v }
            for key in Self.keys(for: registry) {
                guard let entry = (auths[key] ?? byHost[Self.host(key)]) as? [String: Any] else { continue }
                guard let auth = entry["auth"] as? String, let data = Data(base64Encoded: auth),
                      let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else {
                    throw ImageError("credentials for '\(registry)' in '\(path)' are malformed (auth is not base64 of user:password)")
                }
                return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
            }
        }
        return nil
    }

    /// Files `credentials` for `registry` (or removes them when nil) in `writePath`.
    public func store(_ credentials: Credentials?, for registry: String) throws {
        let path = writePath
        var doc = access(path, F_OK) == 0 ? try Self.read(path) : [:]
        var auths = doc["auths"] as? [String: Any] ?? [:]
        for k in Self.keys(for: registry) { auths.removeValue(forKey: k) }
        if let credentials {
            let token = Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
            auths[registry] = ["auth": token]
        }
        doc["auths"] = auths
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !dir.isEmpty && !Sys.access(dir, F_OK) { try Files.makeDirectories(dir, mode: 0o700) }
        let bytes = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        // Credentials: readable by their owner only, replaced whole or not at all.
        try Files.writeAtomically(path, Array(bytes), mode: 0o600)
    }

    static func read(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError("cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
        if data.isEmpty { return [:] }
        guard let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ImageError("'\(path)' is not a JSON object (expected {\"auths\": {...}})")
        }
        return doc
    }

    static func host(_ key: String) -> String {
        var k = Substring(key)
        for scheme in ["https://", "http://"] where k.hasPrefix(scheme) { k = k.dropFirst(scheme.count) }
        return String(k.split(separator: "/").first ?? k)
    }
}
