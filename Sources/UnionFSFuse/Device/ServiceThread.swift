import Glibc
import Synchronization
import UnionFSCore

/// A thread that sleeps until woken and then runs its work: the body of `ListingProber` and
/// `FilesReadAhead`. Started from the loop's thread after the daemon forked (Swift's `Mutex`
/// needs a thread made after it) and stopped, and joined, after every worker ended.
final class ServiceThread: @unchecked Sendable {
    private let running = Atomic<Bool>(false)
    /// The thread's id once it runs, else 0 (`IdleWaitGuard` sets its policy with the workers').
    let threadID = Atomic<Int32>(0)
    private let wakeUp: UnsafeMutablePointer<sem_t>
    private var thread: pthread_t?
    private var work: (() -> Void)?

    init() {
        wakeUp = .allocate(capacity: 1)
        sem_init(wakeUp, 0, 0)
    }

    deinit {
        sem_destroy(wakeUp)
        wakeUp.deallocate()
    }

    /// True from `start` until `stop`: work handed over before or after is dropped.
    var isRunning: Bool { running.load(ordering: .relaxed) }

    /// Starts the thread, which runs `work` once per `wake` (wakes that come while it runs
    /// are counted, not lost). From the loop's thread only.
    func start(_ work: @escaping () -> Void) {
        guard thread == nil else { return }
        self.work = work
        running.store(true, ordering: .releasing)
        var t = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&t, nil, { arg in
            Unmanaged<ServiceThread>.fromOpaque(arg!).takeRetainedValue().serve()
            return nil
        }, me) == 0 {
            thread = t
        } else {
            Unmanaged<ServiceThread>.fromOpaque(me).release()
            running.store(false, ordering: .releasing)
            self.work = nil
        }
    }

    /// Ends the thread after the work it is running, and joins it. From the loop's thread.
    func stop() {
        guard let t = thread else { return }
        running.store(false, ordering: .releasing)
        sem_post(wakeUp)
        pthread_join(t, nil)
        thread = nil
        work = nil
    }

    func wake() { sem_post(wakeUp) }

    private func serve() {
        threadID.store(Sys.threadID(), ordering: .releasing)
        defer { threadID.store(0, ordering: .releasing) }
        guard let work else { return }
        while true {
            while sem_wait(wakeUp) != 0 && errno == EINTR {}
            guard running.load(ordering: .acquiring) else { return }
            work()
        }
    }
}
