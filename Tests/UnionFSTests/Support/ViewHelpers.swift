import Foundation
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Asserts that `body` throws one of `expected` (an `Errno`).
func XCTAssertErrno<T>(_ expected: [Errno], _ body: () throws -> T, _ message: String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
    do {
        let v = try body()
        XCTFail("expected \(expected), got success: \(v) \(message)", file: file, line: line)
    } catch let e as Errno {
        XCTAssertTrue(expected.contains(e), "expected \(expected), got \(e) \(message)", file: file, line: line)
    } catch {
        XCTFail("expected \(expected), got \(error) \(message)", file: file, line: line)
    }
}

/// Base for tests reading layers through `UnionView` without mounting.
class ViewTestCase: TempDirTestCase {
    var fx: LayerFixture!

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("fixtures need root (mknod, chown, trusted.* xattrs)") }
        fx = try LayerFixture(root: tmp + "/layers")
    }

    /// A view over the named fixture layers (top first), with an optional upper layer name.
    func view(_ lowers: [String], upper: String? = nil, oci: Bool = true) throws -> UnionView {
        var c = LayerStackConfiguration(lowerdirs: lowers.map { fx.path($0) }, ociWhiteouts: oci)
        if let upper {
            c.upperdir = fx.path(upper)
            c.workdir = try makeDir("work-" + upper)
        }
        return try UnionView(c)
    }

    /// Sorted names of the merged listing of `path`.
    func names(_ v: UnionView, _ path: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            return try v.list(path).map { $0.name.description }.sorted()
        } catch {
            XCTFail("list(\(path)) failed: \(error)", file: file, line: line)
            return []
        }
    }

    func text(_ v: UnionView, _ path: String) throws -> String {
        String(decoding: try v.readAll(path), as: UTF8.self)
    }
}

extension UnionFileSystem {
    /// The merged listing of directory `id` read the way a mount reads it (the bridge's
    /// readdir): the shared listing, then `listingRead` at its end, which lets its layer
    /// directories go.
    func readListing(_ id: NodeID) throws(Errno) -> [MergedEntry] {
        let handle = try sharedListing(id)
        defer { listingRead(handle) }
        return try handle.entries()
    }
}
