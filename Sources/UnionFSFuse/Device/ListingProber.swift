import Glibc
import Synchronization
import UnionFSCore

/// One thread that probes the entries of a listing's next readdirplus chunk while the kernel
/// and the reader are busy with the chunk just sent (`DirectoryHandle.probeAhead`).
///
/// Why: readdirplus of a large directory is a chain of requests the kernel sends one after
/// another, and a third to a half of the daemon's time in each went to the `fstatat` (and,
/// for empty lower files, `listxattr`) of every entry, with the other CPU idle meanwhile.
/// One job at a time: a new one replaces the one not yet started (the handle then just finds
/// nothing probed). Started by `DeviceLoop.run`, after the daemon forked (Swift's `Mutex` needs
/// a thread made after it), and stopped when the loop ends; before, `submit` does nothing.
final class ListingProber: @unchecked Sendable {
    private struct Job: @unchecked Sendable {
        let handle: DirectoryHandle
        let listing: DirectoryHandle.Listing
        let range: Range<Int>
        let job: UInt64
    }
    private let next = Mutex<Job?>(nil)
    private let running = Atomic<Bool>(false)
    private let wake: UnsafeMutablePointer<sem_t>
    private var thread: pthread_t?
    /// Counts the entries answered from what was probed (`stats`).
    let stats: TransportStats

    init(stats: TransportStats) {
        self.stats = stats
        wake = .allocate(capacity: 1)
        sem_init(wake, 0, 0)
    }

    deinit {
        sem_destroy(wake)
        wake.deallocate()
    }

    /// Starts the thread (from the loop's thread only).
    func start() {
        guard thread == nil else { return }
        running.store(true, ordering: .releasing)
        var t = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&t, nil, { arg in
            let p = Unmanaged<ListingProber>.fromOpaque(arg!).takeRetainedValue()
            p.serve()
            return nil
        }, me) == 0 {
            thread = t
        } else {
            Unmanaged<ListingProber>.fromOpaque(me).release()
            running.store(false, ordering: .releasing)
        }
    }

    /// Ends the thread (from the loop's thread, after every worker ended).
    func stop() {
        guard let t = thread else { return }
        running.store(false, ordering: .releasing)
        sem_post(wake)
        pthread_join(t, nil)
        thread = nil
    }

    /// Probes `range` of `listing` ahead, for the reader of `handle` to find at its next request.
    func submit(_ handle: DirectoryHandle, _ listing: DirectoryHandle.Listing, _ range: Range<Int>) {
        guard running.load(ordering: .relaxed), !range.isEmpty else { return }
        let job = handle.expectProbes(listing, range)
        next.withLock { $0 = Job(handle: handle, listing: listing, range: range, job: job) }
        sem_post(wake)
    }

    private func serve() {
        while true {
            while sem_wait(wake) != 0 && errno == EINTR {}
            guard running.load(ordering: .acquiring) else { return }
            let job = next.withLock { (slot) -> Job? in
                defer { slot = nil }
                return slot
            }
            if let job { job.handle.probeAhead(job.listing, job.range, job: job.job) }
        }
    }
}
