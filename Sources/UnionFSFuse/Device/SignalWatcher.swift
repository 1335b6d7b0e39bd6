import Glibc
import Synchronization

/// SIGINT, SIGTERM and SIGHUP for a session on our own transport: blocked in the thread that
/// makes the watcher (and so in every worker it starts later), and taken by one thread that
/// waits for them with `sigwait` and then calls `onEnd` (which unmounts: every worker's read
/// then ends with `ENODEV`). libfuse's handlers only set a flag its own loop polls. SIGUSR1
/// calls `onStats` and keeps waiting (`unionfs-swift stats`).
final class SignalWatcher: @unchecked Sendable {
    private var set = sigset_t()
    private var thread: pthread_t?
    private var onEnd: (() -> Void)?
    private var onStats: (() -> Void)?
    /// Set by `stop`: the wake-up signal it sends is then not a request to unmount.
    private let stopping = Atomic<Bool>(false)

    init() {
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGUSR1] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts the waiting thread.
    func start(onStats: @escaping () -> Void, onEnd: @escaping () -> Void) {
        self.onStats = onStats
        self.onEnd = onEnd
        var t = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&t, nil, { arg in
            let w = Unmanaged<SignalWatcher>.fromOpaque(arg!).takeRetainedValue()
            var set = w.set
            while true {
                var got: Int32 = 0
                if sigwait(&set, &got) != 0 { continue }
                if w.stopping.load(ordering: .acquiring) { break }
                if got == SIGUSR1 { w.onStats?(); continue }
                w.onEnd?()
                break
            }
            return nil
        }, me) == 0 {
            thread = t
        } else {
            Unmanaged<SignalWatcher>.fromOpaque(me).release()
        }
    }

    /// Ends the waiting thread (the loop ended on its own: unmounted from outside).
    func stop() {
        guard let t = thread else { return }
        stopping.store(true, ordering: .releasing)
        pthread_kill(t, SIGTERM)
        pthread_join(t, nil)
        thread = nil
    }
}
