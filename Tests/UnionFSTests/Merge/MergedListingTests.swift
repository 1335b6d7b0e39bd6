import Glibc
import SystemPackage
import UnionFS
import XCTest

/// readdir rules (§2): union of names, first occurrence wins with its type, whiteouts and the
/// names they hide never shown.
final class MergedListingTests: ViewTestCase {
    func testFirstOccurrenceWinsWithItsType() throws {
        try fx.layer("top").file("n1", "file").dir("n2").symlink("n3", to: "x")
        try fx.layer("bot").dir("n1").file("n2", "file").file("n3", "file").file("n4", "file")
        let v = try view(["top", "bot"])
        let entries = try v.list("")
        XCTAssertEqual(entries.count, 4, "each name once: \(entries.map(\.name.description))")
        let types = Dictionary(uniqueKeysWithValues: entries.map { ($0.name.description, Int32($0.type)) })
        XCTAssertEqual(types["n1"], Int32(DT_REG))
        XCTAssertEqual(types["n2"], Int32(DT_DIR))
        XCTAssertEqual(types["n3"], Int32(DT_LNK))
        XCTAssertEqual(types["n4"], Int32(DT_REG))
    }

    /// A big directory spread over three layers, with whiteouts: exact set of names.
    func testLargeDirectoryAcrossLayers() throws {
        let top = try fx.layer("top"), mid = try fx.layer("mid"), bot = try fx.layer("bot")
        var expected = Set<String>()
        for i in 0..<3000 {
            let name = "e\(i)"
            switch i % 5 {
            case 0: try top.file("big/" + name, name); expected.insert(name)
            case 1: try mid.file("big/" + name, name); expected.insert(name)
            case 2: try bot.file("big/" + name, name); expected.insert(name)
            case 3: try mid.whiteout("big/" + name); try bot.file("big/" + name, name)
            default: try top.file("big/" + name, name); try bot.file("big/" + name, "dup"); expected.insert(name)
            }
        }
        let v = try view(["top", "mid", "bot"])
        let got = try v.list("big").map { $0.name.description }
        XCTAssertEqual(got.count, expected.count, "no duplicates, no hidden names")
        XCTAssertEqual(Set(got), expected)
    }
}
