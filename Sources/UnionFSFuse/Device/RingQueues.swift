import Glibc
import Synchronization

/// The ring workers of each CPU queue, from before the handshake to their end.
///
/// Why: once a connection agreed to FUSE over io_uring, the kernel holds every new request
/// until each CPU queue has a registered entry (`fuse_block_alloc`), and later a queue's
/// requests wait for that queue's entries: a queue with no worker hangs the mount for good.
/// So the workers are started, and set up their rings, before INIT is answered: the handshake
/// asks for the ring only when every queue has a worker ready (`awaitSetUp`), else the mount is
/// served through `/dev/fuse` and `stats` says why. A worker registers its entry only once the
/// ring was agreed (`decide`; the kernel refuses a registration before INIT). A queue that
/// loses its last worker after that (the kernel refused its registration) is reported once
/// (`failed`).
///
/// The loop's thread may be the one that forked (`DeviceLoop.run`), where a `Mutex` it held
/// would name an owner the kernel cannot find: it shares only atomics and semaphores here.
final class RingQueues: @unchecked Sendable {
    private final class Queue: Sendable {
        /// Workers whose ring was set up (before `decide`), then those still serving.
        let workers = Atomic<Int>(0)
    }

    private let queues: [Queue]
    /// Posted once by each started worker when its ring was set up or refused.
    private let reports: UnsafeMutablePointer<sem_t>
    /// Posted once for each started worker by `decide`.
    private let decided: UnsafeMutablePointer<sem_t>
    /// Workers started (the loop's thread only, before `awaitSetUp`).
    private var started = 0
    /// The first errno that left a worker unready (its ring, its descriptor or its thread).
    private let firstError = Atomic<Int32>(0)
    /// The agreed payload size of an entry when the ring serves, else 0 (set by `decide`).
    private let payloadSize = Atomic<Int>(0)
    /// Set by the first queue reported lost.
    private let lost = Atomic<Bool>(false)

    init(queues count: Int) {
        queues = (0..<count).map { _ in Queue() }
        reports = .allocate(capacity: 1)
        decided = .allocate(capacity: 1)
        sem_init(reports, 0, 0)
        sem_init(decided, 0, 0)
    }

    deinit {
        sem_destroy(reports)
        sem_destroy(decided)
        reports.deallocate()
        decided.deallocate()
    }

    var count: Int { queues.count }

    /// The loop's thread made a worker's thread, which will call `setUp` once.
    func workerStarted() { started += 1 }

    /// The loop's thread could not make a worker (`errno`: its descriptor or thread).
    func workerNotStarted(errno: Int32) {
        _ = firstError.compareExchange(expected: 0, desired: errno, ordering: .relaxed)
    }

    /// A worker of `queue` set up its ring (`error` 0) or could not (its errno).
    func setUp(queue: Int, error: Int32) {
        if error == 0 {
            queues[queue].workers.add(1, ordering: .relaxed)
        } else {
            _ = firstError.compareExchange(expected: 0, desired: error, ordering: .relaxed)
        }
        sem_post(reports)
    }

    /// Waits for every started worker's `setUp`: 0 when each queue has a ring ready, else the
    /// errno that left one without (ENOMEM when none was given). Each worker only sets up a
    /// ring (`io_uring_setup` and three `mmap`s), so the wait is short.
    func awaitSetUp() -> Int32 {
        for _ in 0..<started {
            while sem_wait(reports) != 0 && errno == EINTR {}
        }
        guard queues.contains(where: { $0.workers.load(ordering: .acquiring) == 0 }) else { return 0 }
        let e = firstError.load(ordering: .relaxed)
        return e != 0 ? e : ENOMEM
    }

    /// The handshake decided: the ring serves with entries of `payloadSize` bytes, or (0) not,
    /// and the workers close their rings. Wakes every started worker.
    func decide(payloadSize size: Int) {
        payloadSize.store(size, ordering: .releasing)
        for _ in 0..<started { sem_post(decided) }
    }

    /// A worker with a ring waits for `decide`: the payload size to register with, or nil.
    func awaitDecision() -> Int? {
        while sem_wait(decided) != 0 && errno == EINTR {}
        let size = payloadSize.load(ordering: .acquiring)
        return size > 0 ? size : nil
    }

    /// A worker of `queue` that served ended with an error: true when that leaves the queue
    /// with none, the first time a queue is lost.
    func failed(_ queue: Int) -> Bool {
        let left = queues[queue].workers.subtract(1, ordering: .acquiringAndReleasing).newValue
        return left <= 0 && !lost.exchange(true, ordering: .acquiringAndReleasing)
    }
}
