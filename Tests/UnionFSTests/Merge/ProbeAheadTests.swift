import Foundation
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// `DirectoryHandle.probeAhead` and `takeProbes`, in process: what readdirplus may take from
/// the prober (the `lstat` of a non-directory whose topmost occurrence is in a lower layer),
/// what it must look up itself, and when a probe no longer counts.
final class ProbeAheadTests: ViewTestCase {
    /// A stack of `low` (files `f0`...`f39` of 0 to 39 bytes, a directory `d`) under an upper
    /// holding `u`, and its root's listing.
    private func rootListing() throws -> (UnionFileSystem, DirectoryHandle, DirectoryHandle.Listing) {
        let low = try fx.layer("low")
        for i in 0..<40 { try low.file("f\(i)", String(repeating: "x", count: i)) }
        try low.dir("d")
        try fx.layer("up").file("u", "upper")
        let c = LayerStackConfiguration(lowerdirs: [fx.path("low")], upperdir: fx.path("up"), workdir: try makeDir("work"))
        let fs = try UnionFileSystem(stack: LayerStack(c))
        let handle = try fs.sharedListing(1)
        return (fs, handle, try handle.currentListing())
    }

    func testProbesLowerFilesOnly() throws {
        let (_, handle, listing) = try rootListing()
        let range = 2..<listing.entries.count
        let job = handle.expectProbes(listing, range)
        handle.probeAhead(listing, range, job: job)
        let probes = handle.takeProbes(listing, from: 2)
        XCTAssertEqual(probes.count, range.count)
        var files = 0
        for (i, probed) in zip(range, probes) {
            let name = listing.entries[i].name.description
            if name.hasPrefix("f") {
                var st = stat()
                XCTAssertEqual(lstat(fx.path("low") + "/" + name, &st), 0)
                XCTAssertEqual(probed?.st_ino, st.st_ino, name)
                XCTAssertEqual(probed?.st_size, Int(name.dropFirst())!, name)
                files += 1
            } else {
                XCTAssertNil(probed, "\(name): a directory or an upper file is the reader's to look up")
            }
        }
        XCTAssertEqual(files, 40)
        XCTAssertTrue(handle.takeProbes(listing, from: 2).isEmpty, "taken once")
    }

    /// The reader takes from its own index on, and only what was probed for it.
    func testTakesFromTheReadersIndex() throws {
        let (_, handle, listing) = try rootListing()
        let job = handle.expectProbes(listing, 10..<20)
        handle.probeAhead(listing, 10..<20, job: job)
        let probes = handle.takeProbes(listing, from: 15)
        XCTAssertEqual(probes.count, 5)
        var st = stat()
        XCTAssertEqual(lstat(fx.path("low") + "/" + listing.entries[15].name.description, &st), 0)
        XCTAssertEqual(probes.first??.st_ino, st.st_ino, "the entry at the reader's index")
        let again = handle.expectProbes(listing, 10..<20)
        handle.probeAhead(listing, 10..<20, job: again)
        XCTAssertTrue(handle.takeProbes(listing, from: 9).isEmpty, "before what was probed")
        let past = handle.expectProbes(listing, 10..<20)
        handle.probeAhead(listing, 10..<20, job: past)
        XCTAssertTrue(handle.takeProbes(listing, from: 20).isEmpty, "past what was probed")
    }

    /// A newer job ends an older one: the older publishes nothing.
    func testNewerJobEndsTheOlder() throws {
        let (_, handle, listing) = try rootListing()
        let old = handle.expectProbes(listing, 2..<20)
        _ = handle.expectProbes(listing, 2..<20)
        handle.probeAhead(listing, 2..<20, job: old)
        XCTAssertTrue(handle.takeProbes(listing, from: 2).isEmpty)
    }

    /// Probes of one listing say nothing about the next (taken after a change).
    func testAnotherListingTakesNothing() throws {
        let (fs, handle, listing) = try rootListing()
        let job = handle.expectProbes(listing, 2..<20)
        handle.probeAhead(listing, 2..<20, job: job)
        _ = try fs.mkdir(parent: 1, name: "new", mode: 0o755, caller: Caller(uid: 0, gid: 0))
        let retaken = try handle.currentListing()
        XCTAssertEqual(retaken.entries.count, listing.entries.count + 1)
        XCTAssertTrue(handle.takeProbes(retaken, from: 2).isEmpty)
    }
}
