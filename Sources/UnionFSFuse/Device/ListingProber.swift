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
/// nothing probed). Started by `DeviceLoop.run` and stopped when the loop ends
/// (`ServiceThread`); before, `submit` does nothing.
final class ListingProber: @unchecked Sendable {
    private struct Job: @unchecked Sendable {
        let handle: DirectoryHandle
        let listing: DirectoryHandle.Listing
        let range: Range<Int>
        let job: UInt64
    }
    private let next = Mutex<Job?>(nil)
    private let thread = ServiceThread()
    /// Its thread's id while it runs, else 0 (`IdleWaitGuard`).
    var threadID: Int32 { thread.threadID.load(ordering: .acquiring) }
    /// Counts the entries answered from what was probed (`stats`).
    let stats: TransportStats

    init(stats: TransportStats) {
        self.stats = stats
    }

    /// Starts the thread (from the loop's thread only).
    func start() {
        thread.start { [unowned self] in
            let job = next.withLock { (slot) -> Job? in
                defer { slot = nil }
                return slot
            }
            if let job { job.handle.probeAhead(job.listing, job.range, job: job.job) }
        }
    }

    /// Ends the thread (from the loop's thread, after every worker ended).
    func stop() { thread.stop() }

    /// Probes `range` of `listing` ahead, for the reader of `handle` to find at its next request.
    func submit(_ handle: DirectoryHandle, _ listing: DirectoryHandle.Listing, _ range: Range<Int>) {
        guard thread.isRunning, !range.isEmpty else { return }
        let job = handle.expectProbes(listing, range)
        next.withLock { $0 = Job(handle: handle, listing: listing, range: range, job: job) }
        thread.wake()
    }
}
