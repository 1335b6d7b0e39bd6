import Foundation
import Glibc
import XCTest

/// The rootless tier: every row of `EdgeCases` over the core's operations in process (no mount,
/// no root), with the lowers in each on-disk form. Runs as any user in a few seconds.
final class InProcessEdgeCaseTests: TempDirTestCase {
    func testEveryEdgeCaseWithOverlayFormLowers() throws { try runAll(.overlay) }

    func testEveryEdgeCaseWithOCIFormLowers() throws { try runAll(.oci) }

    /// The table covers every case of docs/SEMANTICS.md §6 but 22, which every row checks.
    func testTheTableCoversSection6() {
        XCTAssertEqual(EdgeCases.all.map(\.id), (1...21).map { "6.\($0)" })
    }

    func runAll(_ form: FixtureForm, file: StaticString = #filePath, line: UInt = #line) throws {
        for row in EdgeCases.all {
            let problems = try run(row, form: form)
            for p in problems { XCTFail("§\(row.id) \(row.title) [\(form) lowers, in process]: \(p)", file: file, line: line) }
        }
    }

    /// One row on a fresh fixture: the steps, the expectations, the upper.
    func run(_ row: EdgeCase, form: FixtureForm) throws -> [String] {
        let root = try makeDir("\(form)-\(row.id)")
        let (lowers, upper, work) = try EdgeCaseRunner.fixture(row, form: form, root: root)
        var problems: [String] = []
        do {
            // The harness (and the layer directories it holds) goes before the upper is read.
            let h = try CoreHarness(lowers: lowers, upper: upper, work: work)
            let acted = EdgeCaseRunner.act(row, on: h)
            problems += acted.problems
            problems += EdgeCaseRunner.check(row, on: h, noted: acted.noted)
        }
        problems += EdgeCaseRunner.checkUpper(row, upper: upper, lowers: lowers)
        return problems
    }
}
