import Foundation
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// `UnionFileSystem.readAheadStart` and `filesAhead`, in process: when a directory's files are
/// read ahead, and which of them (`FilesReadAheadTests` has them through a mount).
final class FilesAheadTests: ViewTestCase {
    /// `d/` over two layers: in `low`, `f0`...`f9` (101 to 1,001 bytes), an empty file, one of
    /// 100,000 bytes, a symlink, two hard links and a subdirectory; in `up`, the file `u`.
    /// Every entry is looked up but `f9`, so the kernel would know all of them but that one.
    private func stack() throws -> (UnionFileSystem, NodeID, [String: NodeID]) {
        let low = try fx.layer("low")
        for i in 0..<10 { try low.file("d/f\(i)", String(repeating: "x", count: 1 + 100 * (i + 1))) }
        try low.file("d/empty", "")
        try low.file("d/large", String(repeating: "y", count: 100_000))
        try low.symlink("d/link", to: "f0")
        try low.file("d/hard1", "linked")
        XCTAssertEqual(link(fx.path("low") + "/d/hard1", fx.path("low") + "/d/hard2"), 0)
        try low.file("d/sub/s0", "in sub")
        try fx.layer("up").file("d/u", "upper")
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: fx.path("up"), workdir: try makeDir("work"))
        let fs = try UnionFileSystem(stack: LayerStack(c))
        let d = try fs.lookup(parent: 1, name: "d").node
        var ids: [String: NodeID] = [:]
        for name in ["empty", "large", "link", "hard1", "hard2", "sub", "u"] + (0..<9).map({ "f\($0)" }) {
            ids[name] = try fs.lookup(parent: d, name: name).node
        }
        return (fs, d, ids)
    }

    /// The names of `d`'s merged listing, in its order.
    private func order(_ fs: UnionFileSystem, _ d: NodeID) throws -> [String] {
        try fs.sharedListing(d).entries().map(\.name.description).filter { $0 != "." && $0 != ".." }
    }

    func testTheSecondStoredFileOfADirectoryStartsIt() throws {
        let (fs, d, ids) = try stack()
        XCTAssertNil(fs.readAheadStart(after: ids["f3"]!), "one file read is no pattern")
        let start = fs.readAheadStart(after: ids["f5"]!)
        XCTAssertEqual(start?.directory, d)
        XCTAssertEqual(start?.name.description, "f5")
        XCTAssertNil(fs.readAheadStart(after: ids["f6"]!), "once per directory")
        // Its subdirectory, once listed, from its first file; once.
        XCTAssertTrue(fs.readAheadStart(listed: ids["sub"]!))
        XCTAssertFalse(fs.readAheadStart(listed: ids["sub"]!))
        XCTAssertFalse(fs.readAheadStart(listed: d), "d's parent (the root) is not read ahead")
    }

    func testSmallKnownLowerFilesInListingOrder() throws {
        let (fs, d, ids) = try stack()
        let names = try order(fs, d)
        let wanted = names.filter { $0.hasPrefix("f") && $0 != "f9" }
        let all = try fs.filesAhead(after: nil, in: d, maxSize: 64 << 10, limit: 100, budget: 1 << 20)
        XCTAssertEqual(all, wanted.map { ids[$0]! },
                       "f0...f8 in listing order: not f9 (never looked up), the empty or the large file, "
                       + "the symlink, the hard links, the subdirectory or the upper file")
        // After a name: only what the listing has after it.
        let from = wanted[3]
        let after = try fs.filesAhead(after: try Name(from), in: d, maxSize: 64 << 10, limit: 100, budget: 1 << 20)
        XCTAssertEqual(after, names.drop { $0 != from }.dropFirst().filter { wanted.contains($0) }.map { ids[$0]! })
        // A larger size takes the large file too, where the listing has it.
        let larger = try fs.filesAhead(after: nil, in: d, maxSize: 1 << 20, limit: 100, budget: 1 << 20)
        XCTAssertEqual(larger, names.filter { wanted.contains($0) || $0 == "large" }.map { ids[$0]! })
    }

    func testLimitsAndStoredFiles() throws {
        let (fs, d, ids) = try stack()
        let wanted = try order(fs, d).filter { $0.hasPrefix("f") && $0 != "f9" }
        XCTAssertEqual(try fs.filesAhead(after: nil, in: d, maxSize: 64 << 10, limit: 3, budget: 1 << 20).count, 3)
        // The budget is reached with the file that passes it.
        let budget = try fs.filesAhead(after: nil, in: d, maxSize: 64 << 10, limit: 100, budget: 1)
        XCTAssertEqual(budget, [ids[wanted[0]]!])
        // A file already stored is not listed again.
        fs.storingLowerData(ids[wanted[1]]!) { true }
        XCTAssertFalse(fs.mayStoreLowerData(ids[wanted[1]]!))
        let rest = try fs.filesAhead(after: nil, in: d, maxSize: 64 << 10, limit: 100, budget: 1 << 20)
        XCTAssertEqual(rest, wanted.filter { $0 != wanted[1] }.map { ids[$0]! })
    }

    /// A file copied up is the upper's: not one to read ahead.
    func testACopiedUpFileIsLeftOut() throws {
        let (fs, d, ids) = try stack()
        let wanted = try order(fs, d).filter { $0.hasPrefix("f") && $0 != "f9" }
        var chmod = AttributeChanges()
        chmod.mode = 0o600
        _ = try fs.setattr(ids[wanted[0]]!, chmod, fd: nil)  // copies it up
        let after = try fs.filesAhead(after: nil, in: d, maxSize: 64 << 10, limit: 100, budget: 1 << 20)
        XCTAssertEqual(after, wanted.dropFirst().map { ids[$0]! })
        XCTAssertFalse(fs.mayStoreLowerData(ids["sub"]!), "a directory is never stored")
    }
}
