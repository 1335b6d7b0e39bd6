import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import UnionFS
import UnionFSImages

/// One registry's HTTP API (the OCI distribution spec), over swift-server's AsyncHTTPClient.
///
/// Why AsyncHTTPClient rather than FoundationNetworking's URLSession: its response delegate
/// streams a body with backpressure (the next part is read from the socket only once the
/// previous one was written to the store), so a 1 GiB layer passes through a bounded buffer
/// while it is unpacked; connections are pooled per host on a small event loop group, so
/// several layers download at once without a thread each; TLS (swift-nio-ssl) takes extra
/// trust roots, a client certificate, or no verification for `--tls-verify=false`; it is the
/// Swift server ecosystem's maintained client. URLSession on Linux buffers whole bodies in its
/// data tasks or writes them to a temporary file in its download tasks, which is the copy the
/// store must not make. No HTTP is written by hand here.
///
/// Auth as registries do it: an anonymous request first; a 401's `WWW-Authenticate` challenge
/// says Bearer (a token from the realm for the service and scopes, asked with the user's
/// credentials when there are some) or Basic (the credentials on every request). Tokens are
/// kept per scope set for the client's life.
final class RegistryClient: @unchecked Sendable {
    let registry: String
    let host: String
    let options: RegistryOptions
    let credentials: Credentials?
    /// Where the credentials came from, for advice in errors.
    let credentialSource: String?
    private(set) var base: String
    private var http: HTTPClient
    /// Guards `challenge` and `tokens`; never held across a request.
    private let mutex = NSLock()
    private var challenge: Challenge?
    private var tokens: [String: String] = [:]

    /// The largest document (manifest, config, error body, token) read into memory.
    static let documentLimit = 16 << 20

    init(registry: String, host: String, options: RegistryOptions) throws {
        self.registry = registry
        self.host = host
        self.options = options
        if let c = options.credentials {
            credentials = c
            credentialSource = "--creds"
        } else {
            let files = AuthFiles(explicit: options.authFile)
            credentials = try files.credentials(for: registry)
            credentialSource = credentials == nil ? nil : files.readOrder.first { access($0, F_OK) == 0 }
        }
        base = "https://" + host
        http = try Self.makeClient(host: host, https: true, options: options)
    }

    deinit { try? http.syncShutdown() }

    static func makeClient(host: String, https: Bool, options: RegistryOptions) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if !options.tlsVerify { tls.certificateVerification = .none }
        let dirs = options.certDir.map { [$0] } ?? ["/etc/containers/certs.d/" + host, "/etc/docker/certs.d/" + host]
        for dir in dirs where FileManager.default.fileExists(atPath: dir) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? []
            for n in names where n.hasSuffix(".crt") { tls.additionalTrustRoots.append(.file(dir + "/" + n)) }
            for n in names where n.hasSuffix(".cert") {
                let key = dir + "/" + n.dropLast(5) + ".key"
                guard FileManager.default.fileExists(atPath: key) else {
                    throw ImageError("client certificate '\(dir)/\(n)' has no key '\(key)'")
                }
                do {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMFile(dir + "/" + n).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                } catch { throw ImageError("client certificate '\(dir)/\(n)' or its key: \(error)") }
            }
            break
        }
        var config = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .follow(max: 10, allowCycles: false),
            timeout: .init(connect: .seconds(10), read: .seconds(60)),
            proxy: try EnvironmentProxy.proxy(host: host, https: https))
        config.httpVersion = .http1Only
        // A refused connection or failed handshake fails the request at once: `request` retries
        // with its own backoff (--retry), rather than the pool retrying until the connect timeout.
        config.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    // MARK: Requests

    /// `/v2/` first: whether the registry is there, over which scheme, and what auth it wants.
    /// With `--tls-verify=false`, a port that does not speak TLS (the handshake fails once
    /// connected) is tried again over plain HTTP, as podman does; credentials are only sent
    /// after this, to the scheme chosen.
    func ping() throws {
        if !options.tlsVerify {
            do {
                try noteChallenge(try perform(.GET, base + "/v2/", headers: [:], body: nil))
                return
            } catch let e where isTransport(e) {
                if isConnectFailure(e) { throw unreachable(e) }
            }
            try switchScheme(https: false)
        }
        do {
            try noteChallenge(try perform(.GET, base + "/v2/", headers: [:], body: nil))
        } catch let e where isTransport(e) {
            throw unreachable(e)
        }
    }

    private func switchScheme(https: Bool) throws {
        let scheme = https ? "https://" : "http://"
        guard !base.hasPrefix(scheme) else { return }
        try? http.syncShutdown()
        base = scheme + host
        http = try Self.makeClient(host: host, https: https, options: options)
    }

    /// Nothing accepts connections there (as opposed to a connection that failed later).
    private func isConnectFailure(_ e: Error) -> Bool {
        if let h = e as? HTTPClientError, h == .connectTimeout { return true }
        return String(describing: type(of: e)).contains("Connect") || "\(e)".contains("Connection refused")
    }

    private func unreachable(_ e: Error) -> ImageError {
        ImageError("registry '\(registry)' cannot be reached at \(base): \(describe(e))\(tlsAdvice(e))")
    }

    private func noteChallenge(_ r: Reply) throws {
        guard r.status == 401 else {
            guard (200...299).contains(r.status) else {
                throw ImageError("registry '\(registry)' answered \(r.status) to /v2/: it is not an OCI distribution registry\(errorDetail(r))")
            }
            return
        }
        guard let value = r.headers.first(name: "WWW-Authenticate"), let c = Challenge.parse(value) else {
            throw ImageError("registry '\(registry)' wants authentication but sent no usable WWW-Authenticate challenge")
        }
        mutex.lock()
        challenge = c
        mutex.unlock()
    }

    /// A request with auth and retries; `sink` streams a 2xx body (and then the request is not
    /// retried here: the caller resumes it). Statuses other than 2xx come back as replies.
    func request(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders = [:], body: [UInt8]? = nil,
                 scopes: [String], limit: Int = documentLimit, sink: ResponseDelegate.Sink? = nil,
                 onHead: (@Sendable (Int, HTTPHeaders) throws -> Void)? = nil,
                 retry: ((Int, String) -> Void)? = nil) throws -> Reply {
        var attempt = 0
        while true {
            do {
                var h = headers
                if let auth = try authorization(scopes: scopes, fresh: false) { h.replaceOrAdd(name: "Authorization", value: auth) }
                var r = try perform(method, url, headers: h, body: body, limit: limit, sink: sink, onHead: onHead)
                if r.status == 401 {
                    // A new challenge (a token expired, or this scope needs one): once more.
                    try noteChallenge(r)
                    if let auth = try authorization(scopes: scopes, fresh: true) {
                        h.replaceOrAdd(name: "Authorization", value: auth)
                        r = try perform(method, url, headers: h, body: body, limit: limit, sink: sink, onHead: onHead)
                    }
                }
                if r.status >= 500 && r.status != 501 && sink == nil && attempt < options.retries {
                    attempt += 1
                    retry?(attempt, "HTTP \(r.status)")
                    backoff(attempt)
                    continue
                }
                return r
            } catch let e where isTransport(e) && sink == nil && attempt < options.retries {
                attempt += 1
                retry?(attempt, describe(e))
                backoff(attempt)
            }
        }
    }

    func backoff(_ attempt: Int) {
        let seconds = options.retryDelay * Double(1 << min(attempt - 1, 10))
        usleep(UInt32(min(seconds, 60) * 1_000_000))
    }

    private func perform(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders, body: [UInt8]?,
                         limit: Int = documentLimit, sink: ResponseDelegate.Sink? = nil,
                         onHead: (@Sendable (Int, HTTPHeaders) throws -> Void)? = nil) throws -> Reply {
        // PUT, POST and PATCH always carry a body (an empty one says Content-Length: 0).
        let sent = body ?? ([.PUT, .POST, .PATCH].contains(method) ? [] : nil)
        var request = try HTTPClient.Request(url: url, method: method, headers: headers, body: sent.map { .bytes($0) })
        request.headers.replaceOrAdd(name: "User-Agent", value: "unionfs-swift")
        let delegate = ResponseDelegate(limit: limit, sink: sink, onHead: onHead)
        defer { delegate.drain() }
        do {
            return try http.execute(request: request, delegate: delegate).futureResult.wait()
        } catch let f as SinkFailure {
            throw f.error
        } catch is ResponseTooLarge {
            throw ImageError("registry '\(registry)': the answer to \(method) \(url) is larger than \(limit) bytes: not a registry document")
        }
    }

    // MARK: Auth

    /// The Authorization header for `scopes`, fetching a token when the registry wants one.
    private func authorization(scopes: [String], fresh: Bool) throws -> String? {
        mutex.lock()
        let c = challenge
        let key = scopes.sorted().joined(separator: " ")
        let cached = fresh ? nil : tokens[key]
        mutex.unlock()
        guard let c else { return nil }
        if c.scheme == "basic" {
            guard let credentials else { return nil }
            return "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
        }
        if let cached { return "Bearer " + cached }
        guard let realm = c.parameters["realm"], var url = URLComponents(string: realm), url.scheme != nil else {
            throw ImageError("registry '\(registry)' sent a Bearer challenge without a usable realm")
        }
        var items = url.queryItems ?? []
        if let service = c.parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
        for s in scopes { items.append(URLQueryItem(name: "scope", value: s)) }
        url.queryItems = items
        guard let tokenURL = url.string else { throw ImageError("registry '\(registry)': bad token realm '\(realm)'") }
        var headers: HTTPHeaders = [:]
        if let credentials {
            headers.add(name: "Authorization", value: "Basic " + Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString())
        }
        let r: Reply
        do { r = try perform(.GET, tokenURL, headers: headers, body: nil, limit: 1 << 20) } catch let e where isTransport(e) {
            throw ImageError("token server \(realm) of '\(registry)' cannot be reached: \(describe(e))")
        }
        if r.status == 401 || r.status == 403 {
            throw ImageError(deniedMessage(status: r.status, what: "the token server \(realm)"))
        }
        guard r.status == 200 else { throw ImageError("token server \(realm) of '\(registry)' answered \(r.status)\(errorDetail(r))") }
        struct Token: Decodable { var token: String?; var access_token: String? }
        guard let t = try? JSONDecoder().decode(Token.self, from: Data(r.body)), let token = t.token ?? t.access_token, !token.isEmpty else {
            throw ImageError("token server \(realm) of '\(registry)' answered without a token")
        }
        mutex.lock()
        tokens[key] = token
        mutex.unlock()
        return "Bearer " + token
    }

    /// What a 401 or 403 means and what to do about it.
    func deniedMessage(status: Int, what: String) -> String {
        if status == 403 {
            return "registry '\(registry)' refused access to \(what) (403 Forbidden): the account\(credentials.map { " '\($0.username)'" } ?? "") lacks the permission; ask the registry's owner"
        }
        if let credentials {
            return "registry '\(registry)' rejected the credentials of '\(credentials.username)' (from \(credentialSource ?? "?")) for \(what) (401): log in again with `unionfs-swift image login \(registry)`"
        }
        return "registry '\(registry)' needs credentials for \(what) (401 Unauthorized): log in with `unionfs-swift image login \(registry)` (or give --creds USER:PASSWORD or --authfile FILE)"
    }

    // MARK: Errors

    func isTransport(_ e: Error) -> Bool {
        e is HTTPClientError || e is IOError || e is ChannelError || e is NIOSSLError
            || e is HTTPParserError || e is NIOSSLExtraError || String(describing: type(of: e)).contains("Connect")
    }

    func describe(_ e: Error) -> String {
        if let h = e as? HTTPClientError {
            switch h {
            case .remoteConnectionClosed: return "the connection was closed mid-answer"
            case .readTimeout: return "no data for 60 seconds"
            case .connectTimeout: return "connecting timed out"
            default: return "\(h)"
            }
        }
        if let p = e as? HTTPParserError, p == .invalidEOFState { return "the connection was closed mid-answer" }
        return "\(e)"
    }

    private func tlsAdvice(_ e: Error) -> String {
        guard e is NIOSSLError || e is NIOSSLExtraError || "\(e)".contains("SSL") || "\(e)".contains("certificate") else { return "" }
        return " (a registry with a private CA needs --cert-dir DIR holding its ca.crt; --tls-verify=false skips verification)"
    }

    /// The registry's own account of an error (`{"errors":[{"code","message"}]}`), if any.
    func errorDetail(_ r: Reply) -> String {
        struct Errors: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E]? }
        guard let e = try? JSONDecoder().decode(Errors.self, from: Data(r.body)), let first = e.errors?.first else {
            return r.body.isEmpty ? "" : " (not a registry error document)"
        }
        return ": " + [first.code, first.message].compactMap { $0 }.joined(separator: " ")
    }

    func url(_ repository: String, _ tail: String) -> String { base + "/v2/" + repository + "/" + tail }

    /// A Location header made absolute.
    func absolute(_ location: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        return base + (location.hasPrefix("/") ? "" : "/") + location
    }
}
