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

    /// The listing readdir hands out: `.` and `..`, then every shown name once, in the order of
    /// its cookie with strictly growing offsets, whatever layer holds it; a name in several
    /// layers is shown once, as the topmost holds it.
    func testListingOrderAndOffsets() throws {
        let top = try fx.layer("top"), mid = try fx.layer("mid"), bot = try fx.layer("bot")
        var expected: [String: String] = [:]
        for i in 0..<600 {
            let name = "n\(i)"
            switch i % 4 {
            case 0: try top.file(name, "top"); try mid.file(name, "mid"); try bot.file(name, "bot"); expected[name] = "top"
            case 1: try mid.dir(name); try bot.file(name, "bot"); expected[name] = "mid"
            case 2: try mid.whiteout(name); try bot.file(name, "bot")
            default: try bot.symlink(name, to: "x"); expected[name] = "bot"
            }
        }
        let c = LayerStackConfiguration(lowerdirs: ["top", "mid", "bot"].map { fx.path($0) })
        let fs = try UnionFileSystem(stack: LayerStack(c))
        let listing = try fs.sharedListing(1).currentListing()
        XCTAssertEqual(listing.entries.prefix(2).map(\.name.description), [".", ".."])
        XCTAssertEqual(Array(listing.offsets.prefix(2)), [1, 2])
        let names = listing.entries.dropFirst(2).map(\.name.description)
        XCTAssertEqual(names.count, expected.count, "each shown name once")
        XCTAssertEqual(Set(names), Set(expected.keys))
        for i in 1..<listing.offsets.count {
            XCTAssertLessThan(listing.offsets[i - 1], listing.offsets[i], "offsets grow at \(i)")
        }
        let cookies = listing.entries.dropFirst(2).map { ListingOrder.cookie($0.name) }
        XCTAssertEqual(cookies, cookies.sorted(), "in the order of the names' cookies")
        for (i, e) in listing.entries.enumerated().dropFirst(2) {
            XCTAssertGreaterThanOrEqual(listing.offsets[i], 3)
            let layer = ["top": 0, "mid": 1, "bot": 2][expected[e.name.description]!]!
            XCTAssertEqual(e.layer, layer, "\(e.name): the topmost occurrence")
        }
        // The offsets are the names' own: a listing taken again gives the same ones.
        let again = try fs.sharedListing(1).currentListing()
        XCTAssertEqual(again.offsets, listing.offsets)
    }

    /// OCI markers: `.wh.NAME` hides NAME in the layers below its own, not in its own layer nor
    /// above; a whiteout in a layer hides the name below even when a marker for it sits in a
    /// layer between.
    func testOCIMarkersHideOnlyBelow() throws {
        try fx.layer("top").file("above", "top")
        try fx.layer("mid").file("same", "mid").ociWhiteout("same").ociWhiteout("above").ociWhiteout("below")
            .whiteout("wo")
        try fx.layer("bot").file("same", "bot").file("above", "bot").file("below", "bot").file("wo", "bot")
            .file("kept", "bot")
        let v = try view(["top", "mid", "bot"])
        XCTAssertEqual(names(v, ""), ["above", "kept", "same"])
        XCTAssertEqual(try text(v, "same"), "mid")
        XCTAssertEqual(try text(v, "above"), "top")
    }

    /// A merge large enough to read its layers on two threads (`namesReadAlongside`): the
    /// same listing as the rules give, whichever thread read which layer.
    func testLargeMergeOnTwoThreads() throws {
        let layers = try ["top", "mid", "bot"].map { try fx.layer($0) }
        var expected: [String: (layer: Int, type: Int32)] = [:]
        for i in 0..<4500 {
            let name = "entry-\(i)"
            switch i % 6 {
            case 0: try layers[0].file(name, "t"); try layers[2].file(name, "b"); expected[name] = (0, Int32(DT_REG))
            case 1: try layers[1].dir(name); expected[name] = (1, Int32(DT_DIR))
            case 2: try layers[1].whiteout(name); try layers[2].file(name, "b")
            case 3: try layers[1].ociWhiteout(name); try layers[2].file(name, "b")
            case 4: try layers[2].symlink(name, to: "x"); expected[name] = (2, Int32(DT_LNK))
            default: try layers[0].file(name, "t"); try layers[1].file(name, "m"); try layers[2].dir(name)
                expected[name] = (0, Int32(DT_REG))
            }
        }
        let c = LayerStackConfiguration(lowerdirs: ["top", "mid", "bot"].map { fx.path($0) })
        let stack = try LayerStack(c)
        let fs = try UnionFileSystem(stack: stack)
        let listing = try fs.sharedListing(1).currentListing()
        let entries = listing.entries.dropFirst(2)
        XCTAssertEqual(entries.count, expected.count)
        for e in entries {
            let want = try XCTUnwrap(expected[e.name.description], "\(e.name) is not shown")
            XCTAssertEqual(e.layer, want.layer, e.name.description)
            XCTAssertEqual(Int32(e.type), want.type, e.name.description)
        }
        let cookies = entries.map { ListingOrder.cookie($0.name) }
        XCTAssertEqual(cookies, cookies.sorted())
        XCTAssertEqual(Set(try stack.mergedListing(of: listing.layers).map(\.name.description)), Set(expected.keys))
    }
}
