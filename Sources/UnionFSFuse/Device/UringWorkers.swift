import CLinux
import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// FUSE over io_uring (Linux 6.14+, fs/fuse/dev_uring.c): the second transport, beside the
/// `/dev/fuse` workers, behind the same `Reply`.
///
/// What the kernel decided: it makes one queue per *possible* CPU and queues a request on the
/// queue of the CPU its caller runs on (`fuse_uring_task_to_queue`), and switches the
/// connection to the ring only once every queue has an entry registered (`is_ring_ready`).
/// Until then the kernel holds every new request (`fuse_block_alloc`: a stat of the mount
/// waited for good when no worker could set up its ring), which is why the workers set up
/// their rings before the handshake, and it asks for the ring only when every queue has one
/// (`RingQueues`). FORGET, INTERRUPT and notifications always come through `/dev/fuse`
/// (`fuse_io_uring_ops` keeps `fuse_dev_queue_forget`/`_interrupt`), so the device workers
/// keep running. An entry is two buffers the kernel writes into: the header
/// (`fuse_uring_req_header`: in_out[128] with `fuse_in_header`, op_in[128] with the opcode's
/// fixed argument `in_args[0]`, `ring_ent_in_out` {flags, commit_id, payload_sz, padding,
/// reserved}) and the payload (the remaining arguments, at least max(8 KiB, max_write,
/// max_pages pages) long, or REGISTER fails). A reply is the out header in in_out, its
/// arguments in the payload and their size in payload_sz, committed by COMMIT_AND_FETCH with
/// the request's unique as commit_id, which also hands the entry back for the next request:
/// one `io_uring_enter` per request instead of a read and a writev. On unmount the kernel
/// completes every entry's command with an error (`-ENOTCONN`); a worker ends when each of its
/// entries has.
///
/// A worker is one thread pinned to its CPU (but while it serves large READs: `place`), with
/// one ring of 128-byte SQEs (the command must come on an SQE128 ring) and `depth` entries of
/// that CPU's queue; each CPU has `perCPU` workers. Why several with one entry each rather
/// than one with several entries: the kernel hands a request to any free entry of the queue,
/// and a worker serves its entries one at a time, so a slow request (a copy-up of a large
/// file, a read from a cold disk, an `fsync`) would hold every request that came to that
/// worker's other entries, and with them every process on that CPU (and async readahead,
/// which sends several READs at once). With one entry per worker a free entry always belongs to an idle thread, as each
/// `/dev/fuse` worker reads only when it is idle.
final class UringWorker: @unchecked Sendable {
    let qid: UInt16
    /// A clone of the connection's descriptor (`fuse_get_dev` accepts any).
    let fd: Int32
    let loop: DeviceLoop
    var ring = unionfs_uring()
    var entries: [UringEntry] = []
    /// The first registration error, or 0 (read after the worker's thread ended).
    private(set) var failure: Int32 = 0
    /// The worker's thread (set before it joins `IdleWaitGuard`).
    private(set) var threadID: Int32 = 0

    /// Entries per worker: one, so that a request never waits behind another in one thread.
    static let depth = 1
    /// Workers per CPU queue: requests of one CPU served at once (each idle one waits in
    /// `io_uring_enter`, costing a thread and its entry's buffers, not CPU).
    static let perCPU = 4

    /// A READ at least this large is served by a worker let off its CPU (`place`).
    static let floatingSize: UInt32 = 128 << 10
    /// Whether the worker may run on all of `home` now (it serves a large READ).
    private var floating = false
    /// The CPUs the daemon's threads were given (by `taskset`, a cpuset, or all), read before
    /// the worker pins itself: where a large READ may go.
    private var home = unionfs_cpu_set()

    /// Pins the worker to its CPU for any request but a large READ, for which it lets it run
    /// on any of `home` (only when that changes: one `sched_setaffinity` per switch).
    ///
    /// Why both: the kernel queues a request on its caller's CPU, and a small one is served
    /// fastest there (the caller sleeps, the worker wakes on the same CPU with warm caches, no
    /// interrupt to another vCPU): unpinned, `ls -l` of 29k entries took 1.39-1.58 s against
    /// 0.87 s, untar 2.9-3.2 s against 1.6-2.2 s. But a stream of large READs (readahead of a
    /// cold file) pinned there has the reader, the worker's `pread` and both copies of each MiB
    /// share one CPU while the other idles: let off, the cold 256 MiB read took a median 128 ms
    /// against 145 ms (10 interleaved rounds; /dev/fuse, whose workers are not pinned, 131-190).
    /// Large WRITEs gained nothing from it (256 MiB in 51-55 ms either way), so they stay. A
    /// switch per file costs nothing measurable: `tar` of 1000 files of 256 KiB (OPEN pins,
    /// READ lets off), cold, median 572 ms against 575 ms pinned (10 interleaved rounds).
    func place(opcode: UInt32, size: UInt32) {
        let large = opcode == Opcode.read.rawValue && size >= Self.floatingSize
        guard large != floating else { return }
        _ = large ? unionfs_affinity_set(&home) : unionfs_pin_to_cpu(Int32(qid))
        floating = large
    }

    init(qid: UInt16, fd: Int32, loop: DeviceLoop) {
        self.qid = qid
        self.fd = fd
        self.loop = loop
    }

    /// Queues the commit of `entry`'s reply (submitted with the next wait).
    func commit(_ entry: UringEntry, unique: UInt64) {
        while unionfs_uring_fuse_cmd(&ring, fd, 2, qid, unique, nil, UInt64(entry.index)) == -EBUSY {
            _ = unionfs_uring_enter(&ring, 0)
        }
    }

    /// Sets up the worker's ring and tells `queues`; then, once the handshake agreed to the
    /// ring, registers `depth` entries of the agreed payload size and serves them until each
    /// has ended. When it did not, the ring is closed unused.
    func run(depth: Int, queues: RingQueues) {
        _ = unionfs_affinity_get(&home)
        _ = unionfs_pin_to_cpu(Int32(qid))  // an offline CPU's queue is served from anywhere
        var size: UInt32 = 1
        while size < UInt32(depth) { size <<= 1 }
        let e = unionfs_uring_init(&ring, size)
        queues.setUp(queue: Int(qid), error: -e)
        guard e == 0 else { return }
        defer { unionfs_uring_exit(&ring) }
        guard let payloadSize = queues.awaitDecision() else { return }
        loop.stats.ringWorkers.add(1, ordering: .relaxed)
        if ring.deferred != 0 { loop.stats.ringDeferred.add(1, ordering: .relaxed) }
        defer {
            // A worker the kernel refused serves nothing: say so, do not count it as serving,
            // and end the session if its queue has no worker left (`DeviceLoop.ringWorkerFailed`).
            if failure != 0 {
                loop.stats.ringWorkers.subtract(1, ordering: .relaxed)
                if ring.deferred != 0 { loop.stats.ringDeferred.subtract(1, ordering: .relaxed) }
                let line = "unionfs-swift: an io_uring worker of queue \(qid) is not serving (errno \(failure))\n"
                _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
                loop.ringWorkerFailed(queue: Int(qid), errno: failure)
            }
        }
        threadID = Sys.threadID()
        let idleWait = loop.idleWait
        idleWait?.join(self)
        defer { idleWait?.leave(self) }
        entries = (0..<depth).map { UringEntry(worker: self, index: $0, payloadSize: payloadSize) }
        defer { entries = [] }
        for entry in entries {
            _ = unionfs_uring_fuse_cmd(&ring, fd, 1, qid, 0, entry.iov, UInt64(entry.index))
        }
        var live = depth
        while live > 0 {
            let n = unionfs_uring_enter(&ring, 1)
            if n == -EINTR || n == -EAGAIN || n == -EBUSY { continue }
            if n < 0 { failure = -n; return }
            var userData: UInt64 = 0
            var res: Int32 = 0
            while unionfs_uring_cqe(&ring, &userData, &res) == 1 {
                guard Int(userData) < entries.count else { continue }
                if res < 0 {
                    // The entry's command ended: the connection is gone (ENOTCONN, ENODEV),
                    // or registration was refused (EOPNOTSUPP: enable_uring off or not agreed).
                    if failure == 0 && res != -ENOTCONN && res != -ENODEV && res != -ECANCELED { failure = -res }
                    live -= 1
                    continue
                }
                entries[Int(userData)].serve(loop)
                idleWait?.served()
            }
        }
    }
}

/// One ring entry: its two registered buffers and the reply written into them.
final class UringEntry: ReplySink, @unchecked Sendable {
    unowned(unsafe) let worker: UringWorker
    let index: Int
    /// `fuse_uring_req_header` (288 bytes).
    let header: UnsafeMutableRawPointer
    /// `slack` bytes, then the payload: the in header and op_in are copied just before the
    /// payload, so the request is one contiguous message for `RequestDecoder`, as read from
    /// `/dev/fuse`, without copying the payload.
    let region: UnsafeMutableRawPointer
    let payloadSize: Int
    let iov: UnsafeMutablePointer<iovec>
    /// Whether the request being served was answered (a dropped answer must still commit).
    private var answered = false

    static let headerSize = 288
    static let slack = 256
    static let ringEntInOut = 256

    init(worker: UringWorker, index: Int, payloadSize: Int) {
        self.worker = worker
        self.index = index
        self.payloadSize = payloadSize
        header = .allocate(byteCount: Self.headerSize, alignment: 64)
        header.initializeMemory(as: UInt8.self, repeating: 0, count: Self.headerSize)
        region = .allocate(byteCount: Self.slack + payloadSize, alignment: 4096)
        iov = .allocate(capacity: 2)
        iov[0] = iovec(iov_base: header, iov_len: Self.headerSize)
        iov[1] = iovec(iov_base: region + Self.slack, iov_len: payloadSize)
        super.init()
    }

    deinit {
        header.deallocate()
        region.deallocate()
        iov.deallocate()
    }

    var payload: UnsafeMutableRawPointer { region + Self.slack }

    /// The kernel filled this entry: rebuild the message and dispatch it.
    func serve(_ loop: DeviceLoop) {
        let length = Int(header.loadUnaligned(as: UInt32.self))
        let unique = header.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let payloadUsed = Int(header.loadUnaligned(fromByteOffset: Self.ringEntInOut + 16, as: UInt32.self))
        let opSize = length - WireSize.inHeader - payloadUsed
        answered = false
        guard opSize >= 0, opSize <= 128, payloadUsed <= payloadSize else {
            send(unique: unique, error: EIO)
            return
        }
        let start = payload - WireSize.inHeader - opSize
        start.copyMemory(from: header, byteCount: WireSize.inHeader)
        (start + WireSize.inHeader).copyMemory(from: header + 128, byteCount: opSize)
        loop.stats.ringRequests.add(1, ordering: .relaxed)
        // fuse_read_in has the size at byte 16 of op_in.
        worker.place(opcode: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self),
                     size: opSize >= 20 ? header.loadUnaligned(fromByteOffset: 128 + 16, as: UInt32.self) : 0)
        loop.dispatch(UnsafeRawBufferPointer(start: start, count: length), self)
        if !answered { send(unique: unique, error: EIO) }  // every ring request expects an answer
    }

    override func send(unique: UInt64, error: Int32) {
        commit(unique: unique, field: error == 0 ? 0 : -error, payload: 0)
    }

    override func send(unique: UInt64, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) {
        let first = min(a.count, payloadSize)
        if first > 0 { payload.copyMemory(from: a.baseAddress!, byteCount: first) }
        let second = min(b.count, payloadSize - first)
        if second > 0 { (payload + first).copyMemory(from: b.baseAddress!, byteCount: second) }
        commit(unique: unique, field: 0, payload: first + second)
    }

    /// Reads straight into the payload buffer: the data is copied once, by the kernel.
    override func sendData(unique: UInt64, from file: Int32, size: Int, offset: Int64) {
        let want = min(size, payloadSize)
        do throws(Errno) {
            let n = try Sys.pread(file, UnsafeMutableRawBufferPointer(start: payload, count: want), offset)
            worker.loop.stats.bytesRead.add(UInt64(n), ordering: .relaxed)
            commit(unique: unique, field: 0, payload: n)
        } catch { send(unique: unique, error: error.rawValue) }
    }

    private func commit(unique: UInt64, field: Int32, payload size: Int) {
        guard !answered else { return }
        answered = true
        header.storeBytes(of: UInt32(WireSize.outHeader + size).littleEndian, as: UInt32.self)
        header.storeBytes(of: field.littleEndian, toByteOffset: 4, as: Int32.self)
        header.storeBytes(of: unique.littleEndian, toByteOffset: 8, as: UInt64.self)
        header.storeBytes(of: UInt32(size).littleEndian, toByteOffset: Self.ringEntInOut + 16, as: UInt32.self)
        worker.commit(self, unique: unique)
    }
}

/// Whether the fuse module lets a daemon use io_uring (`enable_uring`, "Y" or "1").
enum UringSupport {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"

    static var enabled: Bool {
        let fd = open(parameter, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var c: UInt8 = 0
        return Glibc.read(fd, &c, 1) == 1 && (c == UInt8(ascii: "Y") || c == UInt8(ascii: "1"))
    }

    /// The CPUs the kernel makes queues for (`num_possible_cpus`): /sys/devices/system/cpu/possible.
    static var possibleCPUs: Int {
        let fd = open("/sys/devices/system/cpu/possible", O_RDONLY)
        guard fd >= 0 else { return Int(sysconf(Int32(_SC_NPROCESSORS_CONF))) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 63) }
        guard n > 0 else { return Int(sysconf(Int32(_SC_NPROCESSORS_CONF))) }
        // "0-N" or "0": the highest number plus one (possible CPUs are numbered densely).
        var last = 0, current = 0
        for c in buffer[0..<n] {
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { current = current * 10 + Int(c - UInt8(ascii: "0")) }
            else { last = max(last, current); current = 0 }
        }
        return max(last, current) + 1
    }

    /// What to say when `uring=on` cannot be honoured.
    static let howToEnable = "FUSE over io_uring needs Linux 6.14+ and the fuse module's enable_uring parameter: as root, echo 1 > \(parameter)"
}
