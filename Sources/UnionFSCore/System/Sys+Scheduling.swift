import CLinux
import Glibc
import SystemPackage

extension Sys {
    /// The two scheduling policies the daemon gives its threads (sched(7)): `SCHED_OTHER`, and
    /// `SCHED_IDLE`, which the scheduler runs only when nothing else wants the CPU and which
    /// it counts as an idle CPU when it places a thread being woken (`IdleWaitGuard`).
    public enum SchedulingPolicy: Sendable, Equatable {
        case normal, idle

        var number: Int32 { self == .idle ? unionfs_SCHED_IDLE : 0 /* SCHED_OTHER */ }
    }

    /// `gettid(2)`: the calling thread's id, for `setSchedulingPolicy(_:thread:)` from another thread.
    public static func threadID() -> Int32 { unionfs_gettid() }

    /// `sched_setscheduler(2)` of one thread of this process (`thread` 0: the caller), with
    /// priority 0 and its nice value kept. Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` (or an
    /// `RLIMIT_NICE` that allows the thread's nice value): EPERM otherwise.
    public static func setSchedulingPolicy(_ policy: SchedulingPolicy, thread: Int32) throws(Errno) {
        var parameter = sched_param()
        parameter.sched_priority = 0
        _ = try retrying { sched_setscheduler(thread, policy.number, &parameter) }
    }

    /// `sched_getscheduler(2)`: whether `thread` (0: the caller) runs under one of the two
    /// policies above; nil for any other (a real-time or `SCHED_BATCH` policy someone chose).
    public static func schedulingPolicy(thread: Int32) throws(Errno) -> SchedulingPolicy? {
        let number = try retrying { sched_getscheduler(thread) }
        return number == 0 ? .normal : number == unionfs_SCHED_IDLE ? .idle : nil
    }
}

extension Sys {
    /// `setpriority(2)` of one thread (`thread` 0: the caller): its nice value, -20 to 19.
    /// Below the current value needs `CAP_SYS_NICE` (or `RLIMIT_NICE`).
    public static func setNice(_ nice: Int32, thread: Int32) throws(Errno) {
        _ = try retrying { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread), nice) }
    }
}

extension Sys {
    /// A thread's I/O priority (ioprio_set(2)): a class (bits 13 and up) and a level, 0 (first)
    /// to 7, within it.
    public struct IOPriority: Sendable, Equatable {
        public let rawValue: Int32

        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// 0 none, 1 real time, 2 best effort, 3 idle. With none, the kernel derives class and
        /// level from the thread's CPU policy and nice value at each I/O it submits: best
        /// effort for SCHED_OTHER, but the idle class for SCHED_IDLE, whose I/O a disk
        /// scheduler that honours classes (mq-deadline) sends only when nothing else waits.
        public var ioClass: Int32 { rawValue >> 13 }

        /// What the kernel derives for a SCHED_OTHER thread of nice value `nice`: best effort
        /// at level (nice + 20) / 5.
        public static func bestEffort(nice: Int32) -> IOPriority {
            IOPriority(rawValue: 2 << 13 | max(0, min(7, (nice + 20) / 5)))
        }
    }

    /// `ioprio_get(2)` of one thread (0: the caller): class none when it has not submitted I/O
    /// yet, else what its I/O gets now (derived from its CPU policy unless set).
    public static func ioPriority(thread: Int32) throws(Errno) -> IOPriority {
        IOPriority(rawValue: try retrying { unionfs_ioprio_get(thread) })
    }

    /// `ioprio_set(2)` of one thread (0: the caller). It then keeps that priority whatever its
    /// CPU policy.
    public static func setIOPriority(_ priority: IOPriority, thread: Int32) throws(Errno) {
        _ = try retrying { unionfs_ioprio_set(thread, priority.rawValue) }
    }

    /// `getpriority(2)` of one thread (0: the caller): its nice value.
    public static func nice(thread: Int32) throws(Errno) -> Int32 {
        errno = 0
        let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(thread))
        if value == -1 && errno != 0 { throw Errno(rawValue: errno) }
        return value
    }
}
