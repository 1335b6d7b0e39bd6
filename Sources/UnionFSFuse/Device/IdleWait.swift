import CLinux
import Glibc
import Synchronization
import UnionFSCore

/// Ring workers wait for requests at `SCHED_IDLE` (`uring_idle=auto`), and go back to
/// `SCHED_OTHER` when a request waits on one of them that does not get the CPU.
///
/// Why: a ring worker serves a request on the CPU its caller runs on, and its reply wakes the
/// caller while the worker still runs there. The scheduler then puts the caller on the other,
/// idle, CPU, and on a VM waking an idle vCPU is an exit to the hypervisor: every round trip
/// paid one. The scheduler counts a CPU whose only running thread is `SCHED_IDLE` as idle, so
/// the caller is woken where it slept, at once (a woken normal thread preempts an idle one),
/// and the worker finishes its `io_uring_enter` when the caller sleeps on its next request.
/// Measured on a tmpfs upper over the benchmark's layers (io_uring, interleaved rounds, off
/// against on): `ls -l` of 29k entries 1.97-2.04 s against 0.87-0.89 s, untar of 9k files
/// 2.18-2.22 s against 1.37 s, 3k creates and their removal 0.48 s against 0.40 s, a warm
/// `find` 0.196 s against 0.115 s; on the benchmark's disk (README, Benchmarks) `ls -l` 1.91 s
/// against 0.90 s, untar 3.10 s against 1.84 s. What it might cost: beside a caller that keeps
/// its CPU busy, a worker at SCHED_IDLE serves only when the caller sleeps. Interleaved rounds
/// found no such cost on the reads the kernel sends ahead (a cold 256 MiB read: medians 166 ms
/// off, 155 ms on, 12 rounds each) and about 3% on a cold walk (1.58 s against 1.63 s). Going
/// to SCHED_IDLE only for the wait (two `sched_setscheduler` a request) kept none of the gain.
/// The I/O the workers submit keeps its class (`ioPriority`). On `/dev/fuse` it
/// changed nothing (any worker may read a request, not one on the caller's CPU), so only ring
/// workers change.
///
/// The trap: a `SCHED_IDLE` thread runs only when nothing else in its scheduling group wants
/// its CPU (it gets about 30 µs in 10 ms beside a busy loop). With a busy loop on each CPU in
/// the daemon's own group, `ls -l` did not end in 60 s. (In another group, as usual, a
/// container's cgroup or another session's autogroup, the share is the group's and nothing
/// starves.) So this thread looks every `IdleWaitPolicy.tick`, while requests come, at each
/// worker's and helper's times (`look`); when one starves, every thread goes back to
/// `SCHED_OTHER` for a while (`IdleWaitPolicy`): with those busy loops the same `ls -l` took
/// 1.82 s against 1.68 s with `uring_idle=off`, the untar 2.55 s against 2.43 s. When no
/// request came for half a second the threads go back too, and this thread sleeps until the
/// next request wakes it (one relaxed load per request), so the first requests after a pause
/// never wait on a starved worker. A thread a worker makes for part of a request
/// (`Alongside`) works at `SCHED_OTHER`: the worker sleeps while it waits for it, and a
/// sleeping worker shows nothing here.
///
/// Only where the daemon may leave `SCHED_IDLE` again (`CAP_SYS_NICE`: root; or an
/// `RLIMIT_NICE` that allows it), tried on this thread first; and not when someone started
/// the daemon under another policy (`chrt`): then the workers keep what they have.
final class IdleWaitGuard: @unchecked Sendable {
    /// What this thread keeps about one ring worker or helper thread.
    private final class Watched {
        let thread: Int32
        /// `/proc/self/task/TID/schedstat` (its time on the CPU, and how often it got it) and
        /// `/proc/self/task/TID/stat` (whether it is runnable).
        let schedstat: Int32
        let stat: Int32
        var last: CPUTimes? = nil
        /// Looks in a row that found it runnable and not having run since the look before.
        var stalled = 0

        init?(thread: Int32) {
            let task = "/proc/self/task/\(thread)/"
            guard let schedstat = try? Sys.open(task + "schedstat", O_RDONLY | O_CLOEXEC) else { return nil }
            guard let stat = try? Sys.open(task + "stat", O_RDONLY | O_CLOEXEC) else { Sys.close(schedstat); return nil }
            self.thread = thread
            self.schedstat = schedstat
            self.stat = stat
        }

        deinit {
            Sys.close(schedstat)
            Sys.close(stat)
        }
    }

    /// The threads being watched (workers, then helpers as they are found), and the policy
    /// they are at. Taken alone (no other lock is held with it): by workers to join and to
    /// leave (before their thread ends and its id can name another), by this thread for each
    /// look and each change of policy.
    private let watched = Mutex<(threads: [Watched], policy: Sys.SchedulingPolicy)>(([], .normal))
    /// The guard's thread sleeps (no request for a while) until a worker wakes it (`served`).
    private let parked = Atomic<Bool>(false)
    private let service = ServiceThread()
    /// Whether this daemon may use SCHED_IDLE: decided by the guard's thread at its first run.
    private var allowed: Bool?
    /// The I/O priority each watched thread is given when it joins: what the daemon's threads
    /// have at SCHED_OTHER (taken on the loop's thread in `start`, before any worker or this
    /// thread runs; best effort at the level of their nice value unless someone chose another
    /// with `ionice`). Left to the kernel, the I/O of a SCHED_IDLE thread is of the idle class,
    /// which mq-deadline sends to the disk only when no other I/O waits (or after 10 s): a cold
    /// 256 MiB read through the mount beside three `dd oflag=direct` writers to the same disk
    /// took 1.2-2.9 s so, against 0.19-0.38 s with `uring_idle=off`.
    private var ioPriority: Sys.IOPriority?
    private var policy = IdleWaitPolicy()
    let stats: TransportStats
    /// The ids of the daemon's helper threads (`ListingProber`, `FilesReadAhead`; 0 for one not
    /// running), which go to SCHED_IDLE and back with the workers: a normal thread a worker
    /// wakes would be placed on the worker's CPU, now counted idle, and take it from the worker
    /// (a warm `find` took 185-200 ms so, against 112-117 ms with them at SCHED_IDLE too).
    let helpers: () -> [Int32]

    init(stats: TransportStats, helpers: @escaping () -> [Int32]) {
        self.stats = stats
        self.helpers = helpers
    }

    /// Starts the thread, which decides at once whether SCHED_IDLE may be used, then sleeps
    /// until the first request (from the loop's thread, before the ring workers).
    func start() {
        let own = (try? Sys.ioPriority(thread: 0)) ?? Sys.IOPriority(rawValue: 0)
        ioPriority = own.ioClass == 0 ? .bestEffort(nice: (try? Sys.nice(thread: 0)) ?? 0) : own
        parked.store(true, ordering: .sequentiallyConsistent)
        service.start { [unowned self] in serveUntilQuiet() }
        service.wake()
    }

    /// Ends and joins the thread, the workers back at SCHED_OTHER (from the loop's thread,
    /// after every ring worker ended).
    func stop() {
        service.stop()
        setPolicy(.normal)
    }

    /// A ring worker joins from its thread once its ring is set up (`threadID` set); one
    /// whose times cannot be read is left at SCHED_OTHER.
    func join(_ worker: UringWorker) { watch(worker.threadID) }

    private func watch(_ thread: Int32) {
        // Its I/O keeps the priority it has at SCHED_OTHER; a thread that cannot be given it is
        // not watched, so it stays at SCHED_OTHER.
        guard let io = ioPriority, (try? Sys.setIOPriority(io, thread: thread)) != nil,
              let w = Watched(thread: thread) else { return }
        watched.withLock { state in
            state.threads.append(w)
            if state.policy == .idle { try? Sys.setSchedulingPolicy(.idle, thread: thread) }
        }
    }

    /// A ring worker leaves before its thread ends (and its id may name another thread).
    func leave(_ worker: UringWorker) {
        let thread = worker.threadID
        watched.withLock { state in state.threads.removeAll { $0.thread == thread } }
    }

    /// After each request a ring worker served: wakes the guard's thread if it sleeps.
    @inline(__always)
    func served() {
        if parked.load(ordering: .relaxed) && parked.exchange(false, ordering: .acquiringAndReleasing) {
            service.wake()
        }
    }

    /// The guard thread's nice value (the workers and everything else keep theirs).
    static let nice: Int32 = -10

    /// Leaving SCHED_IDLE needs a privilege: tried on the guard's own thread, before any worker.
    private func mayUseIdle() -> Bool {
        guard (try? Sys.schedulingPolicy(thread: 0)) == .normal else { stats.idleWait.store(3, ordering: .relaxed); return false }
        guard (try? Sys.setSchedulingPolicy(.idle, thread: 0)) != nil,
              (try? Sys.setSchedulingPolicy(.normal, thread: 0)) != nil else {
            stats.idleWait.store(2, ordering: .relaxed)
            return false
        }
        stats.idleWait.store(1, ordering: .relaxed)
        // This thread must get the CPU soon when workers starve: the busy threads starving them
        // are normal ones, maybe in the daemon's own scheduling group. A lower nice value is
        // allowed by the same privilege (tried and dropped if not).
        try? Sys.setNice(IdleWaitGuard.nice, thread: 0)
        return true
    }

    /// The guard's thread, each time it is woken: at its first run it only decides whether
    /// SCHED_IDLE may be used; after that, a request came while it slept, and it looks every
    /// tick until the workers go quiet (or the mount ends).
    private func serveUntilQuiet() {
        guard let allowed else {
            allowed = mayUseIdle()
            // Not allowed: nothing is ever woken again (`served` finds `parked` false).
            if allowed == false { parked.store(false, ordering: .sequentiallyConsistent) }
            return
        }
        guard allowed else { return }
        var lastServed = stats.ringRequests.load(ordering: .relaxed)
        var action = policy.woken(now: TransportStats.now())
        while true {
            switch action {
            case .none: break
            case .makeIdle: setPolicy(.idle)
            case .makeNormal:
                setPolicy(.normal)
                stats.idleFallbacks.add(1, ordering: .relaxed)
            case .park:
                setPolicy(.normal)
                watched.withLock { state in for w in state.threads { w.last = nil; w.stalled = 0 } }  // a fresh start
                parked.store(true, ordering: .sequentiallyConsistent)
                // A request served since the last look would have found `parked` false: look
                // again after setting it (one missed wake-up would only keep the workers at
                // SCHED_OTHER until the next request).
                guard stats.ringRequests.load(ordering: .sequentiallyConsistent) != lastServed,
                      parked.exchange(false, ordering: .acquiringAndReleasing) else { return }
                lastServed = stats.ringRequests.load(ordering: .relaxed)
                if policy.woken(now: TransportStats.now()) == .makeIdle { setPolicy(.idle) }
            }
            var pause = timespec(tv_sec: 0, tv_nsec: Int(IdleWaitPolicy.tick)), left = timespec()
            while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
            guard service.isRunning else { return }
            let total = stats.ringRequests.load(ordering: .relaxed)
            let servedAny = total != lastServed
            lastServed = total
            action = policy.look(now: TransportStats.now(), served: servedAny, starved: look())
        }
    }

    private func setPolicy(_ policy: Sys.SchedulingPolicy) {
        watched.withLock { state in
            guard state.policy != policy else { return }
            state.policy = policy
            for w in state.threads { try? Sys.setSchedulingPolicy(policy, thread: w.thread) }
        }
        stats.idleWaitNow.store(policy == .idle, ordering: .relaxed)
    }

    /// Whether a watched thread starves: since the last look it waited for the CPU more than
    /// half a tick and more than 8 times as long as it ran (a starved one gets slices of about
    /// 10 µs, 30 µs per tick, beside a busy loop), or it was runnable at this look and at the
    /// one before and did not run at all in between. The second is needed because the kernel
    /// adds a wait to a thread's times only when the thread gets the CPU. (Its ring cannot show
    /// it either: a request's completion is posted by the worker's own thread, when it runs.)
    /// Without contention a ring worker at SCHED_IDLE waits only in the moment between waking
    /// its caller and sleeping: during `ls -l` of 29k entries, 55 ms waiting against 312 ms
    /// running over 0.87 s; during a cold walk, up to 4 ms in a tick, about as long as it ran.
    private func look() -> Bool {
        // Helpers are watched too once they run: at SCHED_IDLE one could be starved holding a
        // lock a worker waits for (the worker then sleeps, and shows nothing).
        for thread in helpers() where thread != 0 && !watched.withLock({ $0.threads.contains { $0.thread == thread } }) {
            watch(thread)
        }
        return watched.withLock { state in
            var starved = false
            for w in state.threads {
                guard let now = cpuTimes(w) else { continue }
                if let last = w.last {
                    let ran = now.ran &- last.ran, waited = now.waited &- last.waited
                    if ran == 0 && now.slices == last.slices && isRunnable(w) { w.stalled += 1 } else { w.stalled = 0 }
                    if w.stalled >= 2 || (waited > IdleWaitPolicy.tick / 2 && waited > 8 &* ran) { starved = true }
                }
                w.last = now
            }
            return starved
        }
    }

    /// A thread's times from schedstat ("ran waited slices": ns on the CPU, ns waiting for it,
    /// times it got it).
    private struct CPUTimes {
        var ran: UInt64, waited: UInt64, slices: UInt64
    }

    private func cpuTimes(_ w: Watched) -> CPUTimes? {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { raw -> CPUTimes? in
            guard let n = try? Sys.pread(w.schedstat, raw, 0), n > 0 else { return nil }
            var fields: [UInt64] = [0]
            for c in raw.prefix(n) {
                if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                    fields[fields.count - 1] = fields[fields.count - 1] &* 10 &+ UInt64(c - UInt8(ascii: "0"))
                } else if fields.count == 3 { break } else { fields.append(0) }
            }
            return fields.count == 3 ? CPUTimes(ran: fields[0], waited: fields[1], slices: fields[2]) : nil
        }
    }

    /// Whether the worker is runnable (state R in stat: "TID (comm) R ..."; comm is at most 15
    /// bytes, so the state is within the first 64).
    private func isRunnable(_ w: Watched) -> Bool {
        var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { raw -> Bool in
            guard let n = try? Sys.pread(w.stat, raw, 0), n > 0,
                  let close = raw.prefix(n).lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return false }
            return raw[close + 2] == UInt8(ascii: "R")
        }
    }
}

/// When `IdleWaitGuard` moves the workers between the two policies, apart from any I/O: fed
/// one look per tick while requests come, it answers what to do.
struct IdleWaitPolicy: Equatable {
    enum Action: Equatable { case none, makeIdle, makeNormal, park }

    /// How often the guard looks while requests come (ns): the longest a request waits on a
    /// starved worker before the workers go back to normal is about two ticks.
    static let tick: UInt64 = 10_000_000
    /// Looks without a request before the workers go back to normal and the guard sleeps.
    static let parkAfter = 50
    /// How long the workers stay normal after a starved request; doubled at each one, up to
    /// `longestHold`, and back to `firstHold` after `forgiveAfter` at SCHED_IDLE without one.
    static let firstHold: UInt64 = 1_000_000_000
    static let longestHold: UInt64 = 64_000_000_000
    static let forgiveAfter: UInt64 = 30_000_000_000

    private(set) var idle = false
    private(set) var hold = IdleWaitPolicy.firstHold
    /// The workers stay normal until then (after a starved request).
    private(set) var normalUntil: UInt64 = 0
    private var idleSince: UInt64 = 0
    private var quietLooks = 0

    /// One look at `now`: whether any request was served since the last look, and whether a
    /// watched thread starved since then.
    mutating func look(now: UInt64, served: Bool, starved: Bool) -> Action {
        if starved && idle {
            if now &- idleSince >= Self.forgiveAfter { hold = Self.firstHold }
            idle = false
            normalUntil = now &+ hold
            hold = min(hold &* 2, Self.longestHold)
            quietLooks = 0
            return .makeNormal
        }
        guard served else {
            quietLooks += 1
            guard quietLooks >= Self.parkAfter else { return .none }
            quietLooks = 0
            idle = false
            return .park
        }
        quietLooks = 0
        return makeIdleIfDue(now)
    }

    /// A request came while the guard slept.
    mutating func woken(now: UInt64) -> Action {
        quietLooks = 0
        return makeIdleIfDue(now)
    }

    private mutating func makeIdleIfDue(_ now: UInt64) -> Action {
        guard !idle, now >= normalUntil else { return .none }
        idle = true
        idleSince = now
        return .makeIdle
    }
}
