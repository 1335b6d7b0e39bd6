import Glibc
import UnionFS
import XCTest

/// `ListingOrder`: the radix sort a merged listing is ordered with, against the plain
/// comparison sort it replaced.
final class ListingOrderTests: XCTestCase {
    /// Random cookies over the whole positive range, many of them repeated: the radix sort
    /// orders them as a stable comparison sort does (equal cookies keep their input order,
    /// which the merge relies on only through its later pass, but stability shows no key was
    /// lost or duplicated on the way).
    func testRadixSortMatchesAStableComparisonSort() {
        var rng = SystemRandomNumberGenerator()
        for count in [0, 1, 2, 63, 64, 65, 1000, 40_000] {
            var keys: [ListingOrder.Key] = []
            for i in 0..<count {
                let cookie: Int64 = i % 7 == 0 && i > 0 ? keys[Int.random(in: 0..<i, using: &rng)].cookie
                    : Int64.random(in: 3...Int64.max, using: &rng)
                keys.append(ListingOrder.Key(cookie: cookie, rank: Int32(i % 5), index: Int32(i)))
            }
            let expected = keys.enumerated().sorted { a, b in
                a.element.cookie != b.element.cookie ? a.element.cookie < b.element.cookie : a.offset < b.offset
            }.map(\.element)
            var sorted = keys
            ListingOrder.radixSortByCookie(&sorted)
            XCTAssertEqual(sorted, expected, "\(count) keys")
        }
    }

    /// Cookies that share their low bits (one radix digit the same for all) or differ only in
    /// the top bits: the passes a digit cannot order are skipped, the others still sort.
    func testRadixSortWithSharedDigits() {
        let highs: [Int64] = (0..<500).map { Int64($0 % 37) << 55 | 0x7ff }
        var keys = highs.enumerated().map { ListingOrder.Key(cookie: $0.element, rank: 0, index: Int32($0.offset)) }
        let expected = keys.enumerated().sorted { a, b in
            a.element.cookie != b.element.cookie ? a.element.cookie < b.element.cookie : a.offset < b.offset
        }.map(\.element)
        ListingOrder.radixSortByCookie(&keys)
        XCTAssertEqual(keys, expected)
    }
}
