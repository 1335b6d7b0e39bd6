import AsyncHTTPClient
import Foundation
import Glibc
import UnionFS
import UnionFSImages

/// The HTTP proxy the environment names for a host, as curl and Go read it: `https_proxy` (or
/// `HTTPS_PROXY`) for https, `http_proxy` (or `HTTP_PROXY`) for http, none for hosts matched by
/// `no_proxy` (`NO_PROXY`: comma-separated names or domain suffixes, `*` for all).
enum EnvironmentProxy {
    static func env(_ names: [String]) -> String? {
        for n in names { if let v = getenv(n).map({ String(cString: $0) }), !v.isEmpty { return v } }
        return nil
    }

    static func proxy(host: String, https: Bool) throws -> HTTPClient.Configuration.Proxy? {
        let bare = host.split(separator: ":").first.map(String.init) ?? host
        if let no = env(["no_proxy", "NO_PROXY"]) {
            for entry in no.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
                if entry == "*" { return nil }
                let e = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
                if bare == e || bare.hasSuffix("." + e) || host == e { return nil }
            }
        }
        guard let url = env(https ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]) else { return nil }
        var rest = Substring(url)
        for scheme in ["http://", "https://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        rest = rest.prefix { $0 != "/" }
        var auth: HTTPClient.Authorization? = nil
        if let at = rest.lastIndex(of: "@") {
            let user = rest[..<at]
            let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
            auth = .basic(username: parts[0], password: parts.count > 1 ? parts[1] : "")
            rest = rest[rest.index(after: at)...]
        }
        let hp = rest.split(separator: ":").map(String.init)
        guard let h = hp.first, !h.isEmpty, hp.count <= 2, let port = hp.count == 2 ? Int(hp[1]) : 80 else {
            throw ImageError("proxy '\(url)' from the environment is not http://HOST[:PORT]")
        }
        return .server(host: h, port: port, authorization: auth)
    }
}
