import XCTest
@testable import UnionFSFuse

/// The counters behind `unionfs-swift stats`: requests per opcode, latency percentiles from
/// power-of-two buckets, data bytes.
final class TransportStatsTests: XCTestCase {
    func testPercentilesAreBucketUpperBounds() {
        // 90 requests under 1 µs... (bucket 0), 9 at 100-127 µs (bucket 7), 1 at 5 ms (bucket 13).
        var h = [UInt64](repeating: 0, count: TransportStats.buckets)
        h[0] = 90; h[7] = 9; h[13] = 1
        XCTAssertEqual(TransportStats.percentile(h, 0.5), 1)
        XCTAssertEqual(TransportStats.percentile(h, 0.9), 1)
        XCTAssertEqual(TransportStats.percentile(h, 0.95), 128)
        XCTAssertEqual(TransportStats.percentile(h, 0.999), 8192)
        XCTAssertEqual(TransportStats.percentile([UInt64](repeating: 0, count: 4), 0.5), 0)
    }

    func testReportCountsPerOpcode() {
        let s = TransportStats()
        for _ in 0..<3 { s.record(opcode: Opcode.lookup.rawValue, nanoseconds: 50_000) }   // 50 µs: bucket 6 (<64)
        s.record(opcode: Opcode.copyFileRange.rawValue, nanoseconds: 2_000_000)
        s.record(opcode: 999, nanoseconds: 0)  // an unknown opcode lands in the last slot, no crash
        s.bytesRead.add(4096, ordering: .relaxed)
        let lines = s.report().split(separator: "\n").map(String.init)
        let lookup = lines.first { $0.hasPrefix("LOOKUP ") }
        XCTAssertNotNil(lookup, s.report())
        XCTAssertEqual(lookup?.split(separator: " ").map(String.init), ["LOOKUP", "3", "64", "64", "64"])
        XCTAssertTrue(lines.contains { $0.hasPrefix("COPY_FILE_RANGE ") }, s.report())
        XCTAssertEqual(lines.first { $0.hasPrefix("ALL ") }?.split(separator: " ")[1], "5")
        XCTAssertTrue(lines.contains("bytes read through the channel:    4096"), s.report())
        XCTAssertFalse(s.report().contains("reply writev"), "a row for replies when none was written")
    }

    /// The replies' writes get a row of their own after ALL (they are part of its times), and
    /// do not add to the request count.
    func testReplyWritesHaveTheirOwnRow() {
        let s = TransportStats()
        s.record(opcode: Opcode.getxattr.rawValue, nanoseconds: 40_000)
        s.recordReplyWrite(nanoseconds: 30_000)   // bucket 5 (<32)
        s.recordReplyWrite(nanoseconds: 500)      // bucket 0 (<1)
        let lines = s.report().split(separator: "\n").map(String.init)
        let all = lines.firstIndex { $0.hasPrefix("ALL ") }
        let writes = lines.firstIndex { $0.hasPrefix("reply writev ") }
        XCTAssertNotNil(all, s.report())
        XCTAssertEqual(writes, all.map { $0 + 1 }, s.report())
        XCTAssertEqual(writes.map { lines[$0].split(separator: " ").suffix(4).map(String.init) }, ["2", "1", "32", "32"])
        XCTAssertEqual(lines.first { $0.hasPrefix("ALL ") }?.split(separator: " ")[1], "1")
    }
}
