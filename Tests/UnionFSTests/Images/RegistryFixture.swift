import Foundation
import Glibc
import XCTest

/// A real registry for the registry tests: Debian's `docker-registry` (the CNCF distribution
/// registry) serving a temporary directory on a free loopback port, plain or with htpasswd auth
/// and TLS from a CA made for the test; always stopped by the test's teardown. Its access log
/// says which blobs were fetched.
final class RegistryServer {
    static let binary = "/usr/bin/docker-registry"
    let dir: String
    let port: Int
    let process: ChildProcess
    var address: String { "127.0.0.1:\(port)" }
    var logPath: String { dir + "/registry.log" }
    /// The blob store of a repository's data (for corrupting a blob in place).
    func blobData(_ digest: String) -> String {
        let hex = String(digest.dropFirst(7))
        return dir + "/data/docker/registry/v2/blobs/sha256/" + hex.prefix(2) + "/" + hex + "/data"
    }

    init(in dir: String, auth: (htpasswd: String, cert: String, key: String)? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else { throw XCTSkip("docker-registry is not installed") }
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        port = try freePort()
        var config = """
        version: 0.1
        log:
          level: warn
          accesslog:
            disabled: false
        storage:
          filesystem:
            rootdirectory: \(dir)/data
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:\(port)
          secret: unionfs-registry-test

        """
        if let auth {
            config += """
              tls:
                certificate: \(auth.cert)
                key: \(auth.key)
            auth:
              htpasswd:
                realm: unionfs-test
                path: \(auth.htpasswd)

            """
        }
        try config.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
        process = try ChildProcess(Self.binary, ["serve", dir + "/config.yml"], stdoutPath: dir + "/registry.log",
                                   stderrPath: dir + "/registry.log")
        try waitForPort(port, process: process, log: logPath)
    }

    func stop() { process.stop() }

    /// The access log's blob GETs (status 200 or 206), as `repo digest` lines.
    func blobGets() -> [String] {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            guard let r = line.range(of: "\"GET /v2/"), line.contains("/blobs/sha256:") else { return nil }
            let rest = line[r.upperBound...]
            guard let end = rest.firstIndex(of: " ") else { return nil }
            let path = rest[..<end]
            let status = rest[end...].split(separator: " ").dropFirst().first ?? ""
            guard status == "200" || status == "206", let b = path.range(of: "/blobs/") else { return nil }
            return path[..<b.lowerBound] + " " + path[b.upperBound...]
        }
    }

    /// Access log lines matching `needle`.
    func logLines(containing needle: String) -> [String] {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init).filter { $0.contains(needle) }
    }
}

/// A loopback port nobody listens on now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw WalkError(description: "no free port: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Waits (at most 10 s) until something accepts connections on the port.
func waitForPort(_ port: Int, process: ChildProcess, log: String) throws {
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
        guard process.isRunning else {
            throw WalkError(description: "server exited: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let r = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if r == 0 { return }
        usleep(50_000)
    }
    process.stop()
    throw WalkError(description: "nothing listens on port \(port) after 10 s")
}

/// A small HTTP proxy in front of a registry that misbehaves as asked (a Python script the test
/// writes and starts; killed in teardown): `bearer` wants a token from its own token endpoint
/// (Basic tok-user:tok-pass), `forbidden` answers 403, `garbage` answers manifests with bytes
/// that are not JSON, `truncate-once` cuts each blob's first answer in half (then serves Range
/// requests), `truncate` cuts every answer, `die` cuts the blob named in `arg` and exits,
/// `wrong-manifest` answers every manifest request with the manifest of tag `arg`,
/// `mediatype` rewrites the manifest's media type to an unknown one.
final class MisbehavingProxy {
    let port: Int
    let process: ChildProcess
    var address: String { "127.0.0.1:\(port)" }

    static let script = #"""
import base64, http.server, json, os, socketserver, sys, urllib.request, urllib.error
mode, port, upstream, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seen = set()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self): self.serve("GET")
    def do_HEAD(self): self.serve("HEAD")
    def reply(self, status, body, headers={}):
        self.send_response(status)
        for k, v in headers.items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def serve(self, method):
        path = self.path
        if mode == "bearer":
            if path.startswith("/token"):
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"tok-user:tok-pass").decode():
                    return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
                return self.reply(200, json.dumps({"token": "good-token"}).encode(), {"Content-Type": "application/json"})
            if self.headers.get("Authorization") != "Bearer good-token":
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate":
                    'Bearer realm="http://127.0.0.1:%d/token",service="unionfs-test"' % port})
        if mode == "forbidden" and path != "/v2/":
            return self.reply(403, b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}')
        if mode == "garbage" and "/manifests/" in path:
            return self.reply(200, b"\x00\x01 this is not a manifest", {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        if mode == "wrong-manifest" and "/manifests/" in path:
            path = path[:path.index("/manifests/")] + "/manifests/" + arg
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
        try:
            r = urllib.request.urlopen(urllib.request.Request(upstream + path, method=method, headers=headers))
        except urllib.error.HTTPError as e:
            r = e
        body = r.read()
        out = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "docker-content-digest", "content-range", "www-authenticate")}
        if mode == "mediatype" and "/manifests/" in path and method == "GET":
            doc = json.loads(body)
            doc["mediaType"] = "application/vnd.example.unknown+json"
            body = json.dumps(doc).encode()
            out["Content-Type"] = "application/vnd.example.unknown+json"
            out.pop("Docker-Content-Digest", None)
        cut = method == "GET" and "/blobs/" in path and r.status in (200, 206) and len(body) > 1024 and (
            mode == "truncate" or (mode == "truncate-once" and path not in seen) or (mode == "die" and arg in path))
        seen.add(path)
        if cut:
            self.send_response(r.status)
            for k, v in out.items(): self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if mode == "die": os._exit(3)
            self.close_connection = True
            return
        self.reply(r.status, body, out)
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", port), Handler).serve_forever()
"""#

    init(mode: String, upstream: String, arg: String = "-", in dir: String) throws {
        let path = dir + "/proxy.py"
        try Self.script.write(toFile: path, atomically: true, encoding: .utf8)
        port = try freePort()
        let log = dir + "/proxy-\(mode)-\(port).log"
        process = try ChildProcess("/usr/bin/python3", [path, mode, "\(port)", upstream, arg], stdoutPath: log, stderrPath: log)
        try waitForPort(port, process: process, log: log)
    }

    func stop() { process.stop() }
}

/// Registry tests: a registry per test class run, a podman of their own, the CLI.
class RegistryTestCase: ImageTestCase {
    /// Starts a plain registry, stopped in teardown.
    func startRegistry(_ name: String = "registry") throws -> RegistryServer {
        let r = try RegistryServer(in: try makeDir(name))
        addCleanup { r.stop() }
        return r
    }

    func startProxy(_ mode: String, for registry: RegistryServer, arg: String = "-") throws -> MisbehavingProxy {
        let p = try MisbehavingProxy(mode: mode, upstream: "http://" + registry.address, arg: arg, in: try makeDir("proxy-" + mode))
        addCleanup { p.stop() }
        return p
    }

    /// `podman push` of an image of the test's podman storage to a plain registry.
    func podmanPush(_ image: String, to registry: RegistryServer, as name: String) throws {
        try podman(["push", "--tls-verify=false", image, "docker://\(registry.address)/\(name)"])
    }

    /// `image pull` with quick retries (plain HTTP allowed).
    func pull(_ ref: String, _ extra: [String] = []) throws -> ProcessResult {
        try image(["pull", "--tls-verify=false", "--retry", "1", "--retry-delay", "0.05"] + extra + [ref], timeout: 60)
    }

    /// Uploads blobs and a manifest straight through the registry API (curl), for images no
    /// tool would make: hostile layers, unknown media types, manifest lists.
    func curl(_ args: [String]) throws -> String {
        let r = try Run.program("/usr/bin/curl", ["-sS", "-f"] + args, timeout: 30)
        guard r.status == 0 else { throw WalkError(description: "curl \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout
    }

    /// Puts `data` as a blob of `repo`; its digest.
    @discardableResult
    func putBlob(_ data: Data, repo: String, on registry: RegistryServer) throws -> (digest: String, size: Int) {
        let file = tmp + "/upload-\(UUID().uuidString)"
        try data.write(to: URL(fileURLWithPath: file))
        let digest = "sha256:" + (try sha256(file))
        let headers = try curl(["-D", "-", "-o", "/dev/null", "-X", "POST", "http://\(registry.address)/v2/\(repo)/blobs/uploads/"])
        guard let location = headers.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("location:") })?
            .dropFirst(9).trimmingCharacters(in: .whitespaces) else { throw WalkError(description: "no upload Location: \(headers)") }
        let url = (location.hasPrefix("http") ? location : "http://\(registry.address)" + location)
        _ = try curl(["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + file,
                      url + (url.contains("?") ? "&" : "?") + "digest=" + digest])
        return (digest, data.count)
    }

    /// Puts a manifest (or index) document under `reference`; its digest.
    @discardableResult
    func putManifest(_ doc: [String: Any], mediaType: String, repo: String, reference: String, on registry: RegistryServer) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])
        let file = tmp + "/manifest-\(UUID().uuidString)"
        try data.write(to: URL(fileURLWithPath: file))
        _ = try curl(["-X", "PUT", "-H", "Content-Type: " + mediaType, "--data-binary", "@" + file,
                      "http://\(registry.address)/v2/\(repo)/manifests/\(reference)"])
        return "sha256:" + (try sha256(file))
    }

    /// An image of the given layer tars (uncompressed) pushed through the API; the manifest's digest.
    @discardableResult
    func pushRaw(layers: [Data], repo: String, tag: String, layerType: String = "application/vnd.oci.image.layer.v1.tar",
                 on registry: RegistryServer) throws -> String {
        var descriptors: [[String: Any]] = []
        var diffs: [String] = []
        for l in layers {
            let (d, n) = try putBlob(l, repo: repo, on: registry)
            descriptors.append(["mediaType": layerType, "digest": d, "size": n])
            diffs.append(d)
        }
        let config = try JSONSerialization.data(withJSONObject: ["architecture": "amd64", "os": "linux",
                                                                 "rootfs": ["type": "layers", "diff_ids": diffs]] as [String: Any],
                                                options: [.sortedKeys])
        let (cd, cn) = try putBlob(config, repo: repo, on: registry)
        return try putManifest(["schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn],
                                "layers": descriptors], mediaType: "application/vnd.oci.image.manifest.v1+json",
                               repo: repo, reference: tag, on: registry)
    }

    /// A tar (made with python's tarfile) holding `entries` (name → content).
    func tarData(_ entries: [(String, String)]) throws -> Data {
        let out = tmp + "/tar-\(UUID().uuidString).tar"
        let spec = try JSONSerialization.data(withJSONObject: entries.map { [$0.0, $0.1] })
        try spec.write(to: URL(fileURLWithPath: out + ".json"))
        try shell("""
        python3 -c 'import io, json, sys, tarfile
        t = tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT)
        for name, content in json.load(open(sys.argv[1])):
            b = content.encode(); i = tarfile.TarInfo(name); i.size = len(b); i.mtime = 1; t.addfile(i, io.BytesIO(b))
        t.close()' '\(out).json' '\(out)'
        """)
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }
}
