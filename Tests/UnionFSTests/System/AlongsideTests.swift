import Glibc
import UnionFS
import XCTest

/// `Alongside.run`: the side's work on a thread of its own, both results back, and errors from
/// either side reported without leaving the thread behind.
final class AlongsideTests: XCTestCase {
    func testSideRunsOnAnotherThreadAndBothResultsComeBack() throws {
        let caller = pthread_self()
        let (mine, theirs) = try Alongside.run({ () throws(Errno) -> pthread_t in pthread_self() },
                                               alongside: { () throws(Errno) -> pthread_t in pthread_self() })
        XCTAssertEqual(mine, caller)
        XCTAssertNotEqual(theirs, caller, "the side ran on a thread of its own")
    }

    func testAnErrorOnEitherSideIsThrown() {
        XCTAssertThrowsError(try Alongside.run({ () throws(Errno) -> Int in 1 },
                                               alongside: { () throws(Errno) -> Int in throw .noSuchFileOrDirectory })) {
            XCTAssertEqual($0 as? Errno, .noSuchFileOrDirectory)
        }
        XCTAssertThrowsError(try Alongside.run({ () throws(Errno) -> Int in throw .permissionDenied },
                                               alongside: { () throws(Errno) -> Int in 2 })) {
            XCTAssertEqual($0 as? Errno, .permissionDenied)
        }
    }

    /// When the caller's half throws, the side's half still runs to its end before `run`
    /// returns: nothing of it is left running.
    func testTheSideIsJoinedWhenTheCallerThrows() {
        final class Flag: @unchecked Sendable { var done = false }
        let flag = Flag()
        XCTAssertThrowsError(try Alongside.run({ () throws(Errno) -> Int in throw .ioError },
                                               alongside: { () throws(Errno) -> Int in
                                                   usleep(50_000)
                                                   flag.done = true
                                                   return 0
                                               }))
        XCTAssertTrue(flag.done, "joined before returning")
    }
}
