import Foundation
import Glibc
import XCTest

/// A registry with htpasswd auth behind TLS from a test CA: certificate checks with --cert-dir,
/// `image login` (wrong and right passwords), then push and pull with the filed credentials.
final class RegistryAuthTests: RegistryTestCase {
    func testLoginPushPullOverTLS() throws {
        let dir = try makeDir("auth")
        let certs = try makeDir("certs")
        try shell("""
        cd '\(dir)' && \
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=unionfs-test-ca 2>/dev/null && \
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null && \
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && \
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext 2>/dev/null && \
        htpasswd -Bbn alice s3cret > htpasswd && cp ca.crt '\(certs)/ca.crt'
        """)
        let registry = try RegistryServer(in: try makeDir("registry"), auth: (dir + "/htpasswd", dir + "/server.crt", dir + "/server.key"))
        addCleanup { registry.stop() }
        let authfile = tmp + "/auth.json"

        // An unknown CA is refused, with what to do.
        let untrusted = try image(["pull", "--authfile", authfile, registry.address + "/app:v1"])
        XCTAssertNotEqual(untrusted.status, 0)
        XCTAssertTrue(untrusted.stderr.contains("--cert-dir"), untrusted.stderr)

        let tls = ["--cert-dir", certs, "--authfile", authfile]
        let wrong = try Run.program(TestEnvironment.binary, ["image", "login"] + tls + ["-u", "alice", "-p", "nope", registry.address], timeout: 30)
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("rejected the credentials of 'alice'"), wrong.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: authfile))
        let anonymous = try image(["pull"] + tls + [registry.address + "/app:v1"])
        XCTAssertTrue(anonymous.stderr.contains("needs credentials") && anonymous.stderr.contains("image login"), anonymous.stderr)

        let login = try Run.program(TestEnvironment.binary, ["image", "login"] + tls + ["-u", "alice", "-p", "s3cret", registry.address], timeout: 30)
        XCTAssertEqual(login.status, 0, login.stderr)
        let filed = try String(contentsOfFile: authfile, encoding: .utf8)
        XCTAssertTrue(filed.contains(registry.address) && filed.contains(Data("alice:s3cret".utf8).base64EncodedString()), filed)

        // Push an image loaded from a layout, then pull it into another store.
        let layout = tmp + "/layout"
        try writeLayout(layout, layers: [try tar(try makeRootfs("rootfs"), to: tmp + "/rootfs.tar")])
        try imageOK(["load", layout])
        let dest = registry.address + "/team/app:v1"
        // In 64 KiB chunks (PATCH requests), as large blobs go.
        let push = try image(["push"] + tls + ["--chunk-size", "65536", "localhost/hand:latest", dest])
        XCTAssertEqual(push.status, 0, push.stderr)
        XCTAssertGreaterThan(registry.logLines(containing: "\"PATCH /v2/team/app/blobs/uploads/").count, 3)
        store = tmp + "/store2"
        let pull = try image(["pull"] + tls + [dest])
        XCTAssertEqual(pull.status, 0, pull.stderr)
        let mnt = try mountImage(dest)
        XCTAssertEqual(try String(contentsOfFile: mnt + "/etc/greeting", encoding: .utf8), "hello\n")
        unmount(mnt)
    }
}
