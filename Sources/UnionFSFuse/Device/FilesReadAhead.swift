import Glibc
import Synchronization
import UnionFSCore

/// One thread that stores ahead, in the kernel's page cache, the small files of a directory a
/// program reads one file after another (`UnionFileSystem.readAheadStart`, `filesAhead`).
///
/// Why: a small lower file is stored in the page cache at its open (`storeInPageCache`), so on a
/// cold cache each open waits for the disk while the reader does nothing; read ahead, the disk
/// works while the reader handles the files before. Jobs are kept newest first: a reader that
/// goes down into a subdirectory needs that directory's files before the rest of its parent's,
/// so a job that arrives while another runs takes over after the current file, and the one it
/// interrupted goes on after it. Started by `DeviceLoop.run` and stopped when the loop ends
/// (`ServiceThread`); before, `submit` does nothing.
final class FilesReadAhead: @unchecked Sendable {
    private struct Job {
        let directory: NodeID
        let after: Name?
        /// Found by the thread when the job first runs (`filesAhead`: a merge of the directory).
        var files: [NodeID]? = nil
        /// The next file to store, and the first the disk was not asked for yet.
        var next = 0
        var advised = 0
    }
    /// The jobs waiting, newest last. A leaf lock.
    private let jobs = Mutex<[Job]>([])
    private let thread = ServiceThread()
    /// Its thread's id while it runs, else 0 (`IdleWaitGuard`).
    var threadID: Int32 { thread.threadID.load(ordering: .acquiring) }

    /// The most a job reads ahead: enough for the directories of a source tree, and a bound on
    /// what one reader of two files of a large directory costs the disk and the page cache.
    static let filesPerJob = 512
    static let bytesPerJob = 8 << 20

    /// The largest file a job takes: files up to the store's 64 KiB are stored, larger ones
    /// only read from the disk into the lower file's page cache, where their READs find them.
    static let largestFile = 1 << 20

    /// Files the disk is asked to read at once ahead of the store.
    static let inFlight = 8

    /// Jobs kept waiting at most: a reader long gone from a directory no longer needs it.
    static let waitingJobs = 16

    init() {}

    /// Starts the thread (from the loop's thread only): `find` lists a job's files, `advise`
    /// has the kernel start reading one from the disk, `store` stores one.
    func start(find: @escaping (NodeID, Name?) -> [NodeID], advise: @escaping (NodeID) -> Void,
               store: @escaping (NodeID) -> Void) {
        thread.start { [unowned self] in runJobs(find: find, advise: advise, store: store) }
    }

    /// Ends the thread (from the loop's thread, after every worker ended); waiting jobs are dropped.
    func stop() {
        thread.stop()
        jobs.withLock { $0.removeAll() }
    }

    /// Reads ahead the files of `directory` listed after `name` (all, for nil).
    func submit(_ directory: NodeID, after name: Name?) {
        guard thread.isRunning else { return }
        jobs.withLock { waiting in
            if waiting.count >= Self.waitingJobs { waiting.removeFirst() }
            waiting.append(Job(directory: directory, after: name))
        }
        thread.wake()
    }

    /// Runs the waiting jobs, newest first, until none is left.
    private func runJobs(find: (NodeID, Name?) -> [NodeID], advise: (NodeID) -> Void, store: (NodeID) -> Void) {
        // The newest job, and how many older ones wait below it.
        while thread.isRunning, let popped = jobs.withLock({ w -> (Job, Int)? in
            guard let last = w.popLast() else { return nil }
            return (last, w.count)
        }) {
            var job = popped.0
            let below = popped.1
            if job.files == nil { job.files = find(job.directory, job.after) }
            let files = job.files!
            while job.next < files.count && thread.isRunning {
                // The disk reads the next `Self.inFlight` files while the first is stored (each
                // asked for once, also across an interruption).
                while job.advised < min(files.count, job.next + Self.inFlight) {
                    advise(files[job.advised])
                    job.advised += 1
                }
                store(files[job.next])
                job.next += 1
                guard job.next < files.count else { break }
                // A newer job came: it goes first, this one waits just below it.
                let interrupted = jobs.withLock { w -> Bool in
                    guard w.count > below else { return false }
                    w.insert(job, at: min(below, w.count))
                    return true
                }
                if interrupted { break }
            }
        }
    }
}
