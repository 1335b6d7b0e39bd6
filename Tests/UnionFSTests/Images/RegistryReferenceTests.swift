import Foundation
import XCTest
@testable import UnionFSRegistry

/// Docker's reference rules, WWW-Authenticate challenges and the credential files: no network.
final class RegistryReferenceTests: XCTestCase {
    func testShortNamesAndRegistries() throws {
        func parsed(_ s: String) throws -> String { try ImageReference.parse(s).description }
        XCTAssertEqual(try parsed("alpine"), "docker.io/library/alpine:latest")
        XCTAssertEqual(try parsed("org/app:1.2"), "docker.io/org/app:1.2")
        XCTAssertEqual(try parsed("docker.io/alpine"), "docker.io/library/alpine:latest")
        XCTAssertEqual(try parsed("index.docker.io/library/alpine:3"), "docker.io/library/alpine:3")
        XCTAssertEqual(try parsed("localhost/app"), "localhost/app:latest")
        XCTAssertEqual(try parsed("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1")
        XCTAssertEqual(try parsed("ghcr.io/org/app"), "ghcr.io/org/app:latest")
        XCTAssertEqual(try parsed("10.0.0.1:5000/app:x"), "10.0.0.1:5000/app:x")
        XCTAssertEqual(try ImageReference.parse("alpine").apiHost, "registry-1.docker.io")
        let d = "sha256:" + String(repeating: "ab", count: 32)
        let pinned = try ImageReference.parse("ghcr.io/org/app:1@" + d)
        XCTAssertEqual(pinned.manifestReference, d)
        XCTAssertEqual(pinned.storeName, "ghcr.io/org/app:1")
        XCTAssertEqual(try ImageReference.parse("app@" + d).storeName, "docker.io/library/app@" + d)
        for bad in ["", "UPPER/app", "app:", "app:-x", "a//b", "app@sha256:1234", "app@md5:" + String(repeating: "a", count: 32),
                    "-app", "app_", "reg.io/", String(repeating: "a", count: 300)] {
            XCTAssertThrowsError(try ImageReference.parse(bad), bad)
        }
    }

    func testChallenges() {
        let c = Challenge.parse(#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#)
        XCTAssertEqual(c?.scheme, "bearer")
        XCTAssertEqual(c?.parameters["realm"], "https://auth.example/token")
        XCTAssertEqual(c?.parameters["service"], "registry.example")
        XCTAssertEqual(c?.parameters["scope"], "repository:a/b:pull")
        XCTAssertEqual(Challenge.parse(#"Basic realm="x, y""#), Challenge(scheme: "basic", parameters: ["realm": "x, y"]))
        XCTAssertEqual(Challenge.parse(#"Negotiate, Basic realm=plain"#)?.parameters["realm"], "plain")
        XCTAssertNil(Challenge.parse("Negotiate"))
    }

    func testProxiesFromTheEnvironment() throws {
        let names = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"]
        let saved = names.map { getenv($0).map { String(cString: $0) } }
        defer { for (n, v) in zip(names, saved) { if let v { setenv(n, v, 1) } else { unsetenv(n) } } }
        for n in names { unsetenv(n) }
        XCTAssertNil(try EnvironmentProxy.proxy(host: "ghcr.io", https: true))
        setenv("https_proxy", "http://user:pw@proxy.example:3128/", 1)
        setenv("http_proxy", "proxy.example", 1)
        setenv("no_proxy", "localhost,.internal.example, 10.0.0.1", 1)
        XCTAssertEqual(try EnvironmentProxy.proxy(host: "ghcr.io", https: true),
                       .server(host: "proxy.example", port: 3128, authorization: .basic(username: "user", password: "pw")))
        XCTAssertEqual(try EnvironmentProxy.proxy(host: "ghcr.io", https: false), .server(host: "proxy.example", port: 80))
        XCTAssertNil(try EnvironmentProxy.proxy(host: "localhost:5000", https: true))
        XCTAssertNil(try EnvironmentProxy.proxy(host: "reg.internal.example", https: true))
        XCTAssertNil(try EnvironmentProxy.proxy(host: "10.0.0.1:5000", https: true))
        setenv("https_proxy", "http://proxy.example:notaport", 1)
        XCTAssertThrowsError(try EnvironmentProxy.proxy(host: "ghcr.io", https: true))
    }

    func testCredentialFiles() throws {
        let dir = NSTemporaryDirectory() + "registry-auth-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/auth.json"
        // docker's spelling of Docker Hub, and other keys kept when writing.
        try #"{"auths":{"https://index.docker.io/v1/":{"auth":"\#(Data("hub:pw".utf8).base64EncodedString())"}},"credHelpers":{}}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let files = AuthFiles(explicit: path)
        XCTAssertEqual(try files.credentials(for: "docker.io"), Credentials(username: "hub", password: "pw"))
        XCTAssertNil(try files.credentials(for: "localhost:5000"))
        try files.store(Credentials(username: "me", password: "a:b"), for: "localhost:5000")
        XCTAssertEqual(try files.credentials(for: "localhost:5000"), Credentials(username: "me", password: "a:b"))
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        XCTAssertNotNil(doc["credHelpers"])
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        try files.store(nil, for: "localhost:5000")
        XCTAssertNil(try files.credentials(for: "localhost:5000"))
        try "not json".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try files.credentials(for: "docker.io"))
    }
}
