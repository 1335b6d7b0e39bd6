import XCTest
@testable import UnionFSFuse

/// When the ring workers go to SCHED_IDLE and back (`IdleWaitPolicy`, the guard's decisions
/// without I/O): idle at the first request, normal after a starved one for a hold that
/// doubles, normal and asleep after a quiet half second.
final class IdleWaitPolicyTests: XCTestCase {
    let tick = IdleWaitPolicy.tick
    let second: UInt64 = 1_000_000_000

    func testIdleOnceRequestsComeAndNormalWhenQuiet() {
        var p = IdleWaitPolicy()
        XCTAssertEqual(p.woken(now: 0), .makeIdle)
        XCTAssertTrue(p.idle)
        XCTAssertEqual(p.look(now: tick, served: true, starved: false), .none)
        var now = tick
        for _ in 1..<IdleWaitPolicy.parkAfter {
            now += tick
            XCTAssertEqual(p.look(now: now, served: false, starved: false), .none)
        }
        XCTAssertEqual(p.look(now: now + tick, served: false, starved: false), .park)
        XCTAssertFalse(p.idle, "parked means normal: the first request after a pause cannot starve")
        XCTAssertEqual(p.woken(now: now + 2 * tick), .makeIdle)
    }

    func testStarvedGoesNormalForAHoldThatDoubles() {
        var p = IdleWaitPolicy()
        XCTAssertEqual(p.woken(now: 0), .makeIdle)
        XCTAssertEqual(p.look(now: tick, served: true, starved: true), .makeNormal)
        XCTAssertFalse(p.idle)
        XCTAssertEqual(p.normalUntil, tick + IdleWaitPolicy.firstHold)
        // Requests keep coming: normal until the hold ends, starved or not.
        XCTAssertEqual(p.look(now: second / 2, served: true, starved: true), .none)
        XCTAssertEqual(p.woken(now: second / 2), .none)
        XCTAssertEqual(p.look(now: tick + second, served: true, starved: false), .makeIdle)
        let t = tick + second + tick
        XCTAssertEqual(p.look(now: t, served: true, starved: true), .makeNormal)
        XCTAssertEqual(p.normalUntil, t + 2 * IdleWaitPolicy.firstHold, "the second hold is twice the first")
        // Many starved ones: the hold stops growing at its longest.
        var now = t
        for _ in 0..<20 {
            now = p.normalUntil
            XCTAssertEqual(p.look(now: now, served: true, starved: false), .makeIdle)
            XCTAssertEqual(p.look(now: now + tick, served: true, starved: true), .makeNormal)
        }
        XCTAssertEqual(p.normalUntil - (now + tick), IdleWaitPolicy.longestHold)
    }

    func testLongCalmAtIdleForgivesTheHold() {
        var p = IdleWaitPolicy()
        XCTAssertEqual(p.woken(now: 0), .makeIdle)
        XCTAssertEqual(p.look(now: tick, served: true, starved: true), .makeNormal)
        XCTAssertEqual(p.look(now: 2 * second, served: true, starved: false), .makeIdle)
        XCTAssertEqual(p.hold, 2 * IdleWaitPolicy.firstHold)
        // At SCHED_IDLE without a starved request for longer than forgiveAfter.
        let later = 2 * second + IdleWaitPolicy.forgiveAfter
        XCTAssertEqual(p.look(now: later, served: true, starved: true), .makeNormal)
        XCTAssertEqual(p.normalUntil, later + IdleWaitPolicy.firstHold)
    }

    func testStarvedWhileNormalChangesNothing() {
        var p = IdleWaitPolicy()
        XCTAssertEqual(p.look(now: tick, served: false, starved: true), .none)
        XCTAssertFalse(p.idle)
        XCTAssertEqual(p.look(now: 2 * tick, served: true, starved: false), .makeIdle)
    }
}
