import Glibc
@testable import UnionFSFuse
import XCTest

/// `RingQueues`: the ring is wanted only when every CPU queue has a worker whose ring was set
/// up, the workers learn the handshake's decision, and a queue that loses its last serving
/// worker is reported once.
final class RingQueuesTests: XCTestCase {
    func testEveryQueueReadyAgreesAndLosesAQueueOnce() {
        let q = RingQueues(queues: 2)
        for queue in [0, 1, 0, 1] {
            q.workerStarted()
            q.setUp(queue: queue, error: 0)
        }
        XCTAssertEqual(q.awaitSetUp(), 0)
        q.decide(payloadSize: 1 << 20)
        for _ in 0..<4 { XCTAssertEqual(q.awaitDecision(), 1 << 20) }
        XCTAssertFalse(q.failed(1), "one of queue 1's two workers is left")
        XCTAssertFalse(q.failed(0))
        XCTAssertTrue(q.failed(1), "queue 1 has no worker left")
        XCTAssertFalse(q.failed(0), "a second lost queue is not reported again")
    }

    func testAQueueWithoutARingSaysWhy() {
        let q = RingQueues(queues: 2)
        q.workerStarted()
        q.setUp(queue: 0, error: 0)
        q.workerStarted()
        q.setUp(queue: 1, error: EMFILE)
        XCTAssertEqual(q.awaitSetUp(), EMFILE)
        q.decide(payloadSize: 0)
        XCTAssertNil(q.awaitDecision(), "the workers close their rings unused")
    }

    func testAQueueNoWorkerStartedForSaysWhy() {
        let q = RingQueues(queues: 2)
        q.workerStarted()
        q.setUp(queue: 0, error: 0)
        q.workerNotStarted(errno: EAGAIN)
        XCTAssertEqual(q.awaitSetUp(), EAGAIN)
        let unknown = RingQueues(queues: 1)
        XCTAssertEqual(unknown.awaitSetUp(), ENOMEM, "no worker and no errno still says the ring is not ready")
    }

    func testTheLoopWaitsForWorkersOnOtherThreads() {
        let q = RingQueues(queues: 2)
        var threads: [Thread] = []
        for queue in 0..<2 {
            q.workerStarted()
            let t = Thread {
                usleep(50_000)
                q.setUp(queue: queue, error: 0)
                XCTAssertEqual(q.awaitDecision(), 8192)
            }
            threads.append(t)
            t.start()
        }
        XCTAssertEqual(q.awaitSetUp(), 0, "both reports counted, though they came later")
        q.decide(payloadSize: 8192)
    }
}
