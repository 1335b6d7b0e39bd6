import Glibc
import Synchronization
import UnionFSCore

/// What our own transport counts, for `unionfs-swift stats` (and SIGUSR1): requests per
/// opcode, their latency from read to reply (the reply's write included), the replies' writes
/// on their own, and the file data bytes that crossed the channel.
///
/// Lock-free: one atomic add per counter per request. Latencies are kept in power-of-two
/// buckets of microseconds (bucket i: below 2^i µs), so percentiles are upper bounds within a
/// factor of two, the resolution that tells a cache hit from a disk read.
final class TransportStats: Sendable {
    static let opcodes = 64
    static let buckets = 24  // up to 2^23 µs ≈ 8 s; slower requests land in the last

    /// One counter (an `Atomic` cannot sit in an array itself).
    final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
        @inline(__always) func add(_ n: UInt64) { value.add(n, ordering: .relaxed) }
        var current: UInt64 { value.load(ordering: .relaxed) }
    }

    private let counts: [Counter] = (0..<TransportStats.opcodes).map { _ in Counter() }
    private let latency: [Counter] = (0..<TransportStats.opcodes * TransportStats.buckets).map { _ in Counter() }
    /// How long each reply's `writev` to `/dev/fuse` took. Part of the latencies above, and
    /// often most of them on a VM: the kernel wakes the caller within that write, and waking
    /// an idle vCPU is an exit to the hypervisor. A ring's replies are committed with the next
    /// fetch and are not counted here.
    private let replyWrites: [Counter] = (0..<TransportStats.buckets).map { _ in Counter() }
    let bytesRead = Atomic<UInt64>(0)
    let bytesWritten = Atomic<UInt64>(0)
    /// FUSE over io_uring workers serving (0: `/dev/fuse` only), and the CPU queues they serve.
    let ringWorkers = Atomic<Int>(0)
    let ringQueues = Atomic<Int>(0)
    /// Why `/dev/fuse` serves the mount rather than io_uring (`DeviceReason`), set once the
    /// handshake decided; 0 while undecided or when the ring serves.
    let deviceReason = Atomic<Int>(0)
    /// Of those workers, the ones whose ring runs the kernel's task work only in their wait
    /// (`IORING_SETUP_DEFER_TASKRUN`, `unionfs_uring_init`).
    let ringDeferred = Atomic<Int>(0)
    /// Requests that came through the ring (the rest came through `/dev/fuse`).
    let ringRequests = Atomic<UInt64>(0)
    /// `IdleWaitGuard`: 0 not used (`uring_idle=off`, or no ring), 1 used, 2 not allowed (the
    /// daemon could not leave SCHED_IDLE again), 3 the daemon runs under another policy; whether
    /// the workers are at SCHED_IDLE now; and how often a starved request sent them back.
    let idleWait = Atomic<Int>(0)
    let idleWaitNow = Atomic<Bool>(false)
    let idleFallbacks = Atomic<UInt64>(0)
    /// Opens answered with a passthrough backing file (their reads and writes never come here).
    let passthroughOpens = Atomic<UInt64>(0)
    /// Readdirplus entries answered with attributes `ListingProber` had found ahead.
    let probedAhead = Atomic<UInt64>(0)
    /// Small lower files stored in the kernel's page cache at their open, and their bytes.
    let storedAtOpen = Atomic<UInt64>(0)
    let bytesStoredAtOpen = Atomic<UInt64>(0)
    /// Of those, the files stored before their open, read ahead (`FilesReadAhead`).
    let storedAhead = Atomic<UInt64>(0)

    init() {}

    /// The monotonic clock in nanoseconds.
    @inline(__always)
    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// One request of `opcode` answered `nanoseconds` after it was read.
    @inline(__always)
    func record(opcode: UInt32, nanoseconds: UInt64) {
        let op = Int(min(opcode, UInt32(Self.opcodes - 1)))
        counts[op].add(1)
        latency[op * Self.buckets + Self.bucket(nanoseconds)].add(1)
    }

    /// One reply written to `/dev/fuse` in `nanoseconds`.
    @inline(__always)
    func recordReplyWrite(nanoseconds: UInt64) {
        replyWrites[Self.bucket(nanoseconds)].add(1)
    }

    /// The histogram bucket of a duration: i for below 2^i µs, the last for anything longer.
    @inline(__always)
    static func bucket(_ nanoseconds: UInt64) -> Int {
        let micros = nanoseconds / 1000
        return min(buckets - 1, micros == 0 ? 0 : 64 - micros.leadingZeroBitCount)
    }

    /// The upper bound (µs) under which `fraction` of `histogram`'s requests were answered.
    static func percentile(_ histogram: [UInt64], _ fraction: Double) -> UInt64 {
        let total = histogram.reduce(0, +)
        guard total > 0 else { return 0 }
        let target = UInt64((Double(total) * fraction).rounded(.up))
        var seen: UInt64 = 0
        for (i, n) in histogram.enumerated() {
            seen += n
            if seen >= target { return 1 << UInt64(i) }
        }
        return 1 << UInt64(histogram.count - 1)
    }

    /// A table: one line per opcode seen, with count and p50/p90/p99 latency, then the totals.
    func report() -> String {
        let workers = ringWorkers.load(ordering: .relaxed)
        var lines = [workers > 0
            ? "transport: io_uring (\(ringQueues.load(ordering: .relaxed)) queues, \(workers) workers, \(ringDeferred.load(ordering: .relaxed)) with deferred task work; \(ringRequests.load(ordering: .relaxed)) requests through the ring, the rest through /dev/fuse)"
            : "transport: /dev/fuse" + (DeviceReason(rawValue: deviceReason.load(ordering: .relaxed)).map { " (not io_uring: \($0.text))" } ?? "")]
        if workers > 0 {
            let fallbacks = idleFallbacks.load(ordering: .relaxed)
            switch idleWait.load(ordering: .relaxed) {
            case 1: lines.append("ring workers wait at SCHED_IDLE: yes (\(idleWaitNow.load(ordering: .relaxed) ? "now" : "not now: no request lately or after a starved one"); "
                                 + "\(fallbacks) time\(fallbacks == 1 ? "" : "s") back to normal after a starved request)")
            case 2: lines.append("ring workers wait at SCHED_IDLE: no (the daemon may not leave SCHED_IDLE again: needs CAP_SYS_NICE)")
            case 3: lines.append("ring workers wait at SCHED_IDLE: no (the daemon runs under a policy it was given)")
            default: lines.append("ring workers wait at SCHED_IDLE: no (uring_idle=off)")
            }
        }
        lines.append("opcode            requests    p50 µs    p90 µs    p99 µs")
        var all = [UInt64](repeating: 0, count: Self.buckets)
        var total: UInt64 = 0
        for op in 0..<Self.opcodes {
            let n = counts[op].current
            guard n > 0 else { continue }
            let h = (0..<Self.buckets).map { latency[op * Self.buckets + $0].current }
            for i in 0..<Self.buckets { all[i] += h[i] }
            total += n
            let name = Opcode(rawValue: UInt32(op))?.label ?? "OPCODE_\(op)"
            lines.append(Self.row(name, n, h))
        }
        lines.append(Self.row("ALL", total, all))
        let writes = replyWrites.map(\.current)
        let written = writes.reduce(0, +)
        if written > 0 {
            // Part of the times above: what writing the replies took, the caller's wake-up in it.
            lines.append(Self.row("reply writev", written, writes))
        }
        lines.append("bytes read through the channel:    \(bytesRead.load(ordering: .relaxed))")
        lines.append("bytes written through the channel: \(bytesWritten.load(ordering: .relaxed))")
        lines.append("passthrough opens:                 \(passthroughOpens.load(ordering: .relaxed))")
        lines.append("listing entries probed ahead:      \(probedAhead.load(ordering: .relaxed))")
        lines.append("files stored in the page cache at open: \(storedAtOpen.load(ordering: .relaxed)) "
                     + "(\(bytesStoredAtOpen.load(ordering: .relaxed)) bytes), "
                     + "\(storedAhead.load(ordering: .relaxed)) of them read ahead")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func row(_ name: String, _ n: UInt64, _ h: [UInt64]) -> String {
        func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        return name + String(repeating: " ", count: max(1, 16 - name.count)) + pad("\(n)", 10)
            + pad("\(percentile(h, 0.5))", 10) + pad("\(percentile(h, 0.9))", 10) + pad("\(percentile(h, 0.99))", 10)
    }
}

/// Why a mount is served through `/dev/fuse` and not FUSE over io_uring, for `stats`: the
/// ring serves each request on its caller's CPU, so a user who sees a slow workload can tell
/// whether it is theirs to turn on.
enum DeviceReason: Int {
    /// `uring=off`.
    case turnedOff = 1
    /// The fuse module has no `enable_uring` parameter (Linux before 6.14).
    case kernelLacks
    /// The parameter is there and off (its default).
    case parameterOff
    /// Asked for, and the kernel did not agree at INIT.
    case notAgreed
    /// This process may not set up a ring (`io_uring_setup` refused: EPERM), so INIT did not ask.
    case ringRefused
    /// Not every CPU queue got a ring worker (no descriptor, thread or ring memory: a limit),
    /// so INIT did not ask.
    case workersShort

    /// From the mount's choice, whether every queue got a ring worker (`setupError`: the errno
    /// of `RingQueues.awaitSetUp`) and what the fuse module says now.
    static func of(choice: FeatureChoice, setupError: Int32 = 0) -> DeviceReason {
        if choice == .off { return .turnedOff }
        if setupError == EPERM || setupError == EACCES { return .ringRefused }
        if setupError != 0 { return .workersShort }
        if access(UringSupport.parameter, F_OK) != 0 { return .kernelLacks }
        return UringSupport.enabled ? .notAgreed : .parameterOff
    }

    var text: String {
        switch self {
        case .turnedOff: return "uring=off"
        case .kernelLacks: return "this kernel has no FUSE over io_uring (Linux 6.14+)"
        case .parameterOff: return "the fuse module's enable_uring is off; as root, echo 1 > \(UringSupport.parameter) and mount again"
        case .notAgreed: return "the kernel did not agree FUSE_OVER_IO_URING at INIT"
        case .ringRefused: return "io_uring_setup is refused to this process (kernel.io_uring_disabled, or a seccomp filter)"
        case .workersShort: return "not every CPU's queue got a ring worker (a limit on open files, threads or locked memory)"
        }
    }

    /// Why the ring could not be set up, for `uring=on`'s error.
    static func setupRefused(_ errno: Int32) -> String {
        if errno != EPERM && errno != EACCES {
            return "not every CPU's queue got a ring worker (\(String(cString: strerror(errno)))): see the limits on open files, threads and locked memory (ulimit -n, -u, -l; a cgroup's pids.max); mount with uring=off or uring=auto"
        }
        return "io_uring_setup is refused to this process (\(String(cString: strerror(errno)))): see the sysctl kernel.io_uring_disabled, or a seccomp filter such as a container's; mount with uring=off or uring=auto"
    }
}
