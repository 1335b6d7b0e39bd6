import CLinux
import Glibc
import Synchronization
import SystemPackage
import UnionFSCore

/// Our own FUSE transport: the INIT handshake and the request loop over `/dev/fuse`, with
/// libfuse kept only for mounting and unmounting (`FuseSession`).
///
/// The handshake runs on the connection's descriptor; then each worker thread serves a
/// clone of it (`FUSE_DEV_IOC_CLONE`), so the kernel queues requests per worker and no lock is shared
/// between them. A worker reads one request into its buffer, decodes it in place
/// (`RequestDecoder`), calls one handler, which answers with one `writev`. Every worker ends
/// when the kernel ends the connection (`ENODEV` on unmount, from `FuseSession.unmountNow`,
/// a signal or `fusermount3 -u`).
final class DeviceLoop: @unchecked Sendable {
    let connection: FuseConnection
    /// The mounted connection's descriptor (the session's: closed by libfuse at destroy).
    let fd: Int32
    /// Set once by the handshake, read by the workers after they start.
    private(set) var agreement: InitAgreement?
    /// The ring workers of each CPU queue when the mount wants the ring (`uring=auto|on` and
    /// the fuse module's `enable_uring`), set by `run` before the handshake.
    private(set) var ringQueues: RingQueues?
    /// Why not every queue has a ring worker ready (the errno: `io_uring_setup` refused, or no
    /// descriptor or thread for a worker), or 0; the handshake then does not ask for the ring.
    private(set) var ringSetupError: Int32 = 0
    /// Called once INIT was agreed and the transport chosen, before the first request is
    /// served (`FuseSession.daemonize`: the waiting parent then exits 0).
    var onServing: (() -> Void)?
    /// Called when a queue is left with no ring worker after the ring was agreed: ends the
    /// session (`FuseSession` unmounts).
    var onRingLost: (() -> Void)?
    /// Set then: `run` returns 1.
    private let ringLost = Atomic<Bool>(false)
    private var decoder = RequestDecoder()
    /// Requests, latencies and bytes (`unionfs-swift stats`, SIGUSR1).
    let stats: TransportStats
    /// Trace every request to stderr in libfuse's `-d` form (`unique: N, opcode: NAME (n), …`).
    let debug: Bool
    /// `uring=auto|on|off`: whether to ask for FUSE over io_uring (`UringWorker`).
    let uring: FeatureChoice
    /// `uring_idle=auto`: ring workers wait at SCHED_IDLE (`IdleWaitGuard`, made by `run` before
    /// the ring workers start when the ring serves, and read by them).
    let uringIdle: Bool
    private(set) var idleWait: IdleWaitGuard?
    /// Set right after the INIT reply, which would otherwise lower it again.
    let readahead: MountReadahead?

    init(connection: FuseConnection, fd: Int32, stats: TransportStats, debug: Bool = false, uring: FeatureChoice = .off,
         uringIdle: Bool = true, readahead: MountReadahead? = nil) {
        self.connection = connection
        self.fd = fd
        self.stats = stats
        self.debug = debug
        self.uring = uring
        self.uringIdle = uringIdle
        self.readahead = readahead
    }

    /// Serves the connection with `threads` workers until it ends; 0 then, 1 when the
    /// handshake failed or a CPU queue of the ring was left with no worker (`RingQueues`).
    func run(threads: Int) -> Int32 {
        // The ring's workers, `UringWorker.perCPU` for each possible CPU's queue, beside the
        // device workers, which still get FORGET and INTERRUPT. They set up their rings
        // before the handshake, which asks for the ring only when every queue has one.
        var ringThreads: [pthread_t] = []
        var ringWorkers: [UringWorker] = []
        let queues = uring != .off && UringSupport.enabled ? startRingWorkers(&ringThreads, &ringWorkers) : nil
        ringQueues = queues
        ringSetupError = queues?.awaitSetUp() ?? 0
        let endRing = {
            // The kernel ends every entry's command when the connection ends; joined after the
            // device workers (which end first, on ENODEV), with a bound so a kernel that keeps
            // a command cannot hang the unmount.
            for t in ringThreads { _ = unionfs_join_within(t, 5) }
            for w in ringWorkers { Sys.close(w.fd) }
        }
        guard let agreement = handshake() else {
            queues?.decide(payloadSize: 0)
            endRing()
            return 1
        }
        let useRing = agreement.flags & InitFlag.overIOUring != 0
        if !useRing {
            queues?.decide(payloadSize: 0)
            endRing()
            stats.deviceReason.store(DeviceReason.of(choice: uring, setupError: ringSetupError).rawValue, ordering: .relaxed)
        }
        if uring == .on && !useRing {
            let line = ringSetupError != 0
                ? "unionfs-swift: uring=on: \(DeviceReason.setupRefused(ringSetupError))\n"
                : "unionfs-swift: uring=on: the kernel did not agree FUSE_OVER_IO_URING at INIT. \(UringSupport.howToEnable)\n"
            _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
            return 1
        }
        onServing?()
        connection.prober.start()
        defer { connection.prober.stop() }
        let fs = connection.fileSystem
        connection.readAhead.start(find: { directory, name in
            (try? fs.filesAhead(after: name, in: directory, maxSize: FilesReadAhead.largestFile,
                                limit: FilesReadAhead.filesPerJob, budget: FilesReadAhead.bytesPerJob)) ?? []
        }, advise: { node in fs.startReadingLowerData(node) },
           store: { [unowned connection] node in connection.storeAhead(node) })
        defer { connection.readAhead.stop() }
        if useRing && uringIdle {
            let prober = connection.prober, readAhead = connection.readAhead
            idleWait = IdleWaitGuard(stats: stats, helpers: { [prober.threadID, readAhead.threadID] })
            idleWait?.start()
        }
        defer { idleWait?.stop() }  // after the ring workers' join below, which runs first
        if useRing, let queues {
            stats.ringQueues.store(queues.count, ordering: .relaxed)
            queues.decide(payloadSize: max(8192, Int(agreement.maxWrite), Int(agreement.maxPages) * 4096))
        }
        defer { if useRing { endRing() } }
        // Every worker reads a clone, even the first: libfuse closes the connection's own
        // descriptor when it unmounts, and a read on a closed (and maybe reused) number must
        // not happen. Without clones, one worker serves the connection's descriptor.
        var channels: [DeviceChannel] = []
        for _ in 0..<max(1, threads) {
            guard let clone = Self.clone(fd) else { break }  // fewer workers, still served
            channels.append(DeviceChannel(fd: clone, ownsDescriptor: true, maxRead: Int(agreement.maxWrite), stats: stats))
        }
        if channels.isEmpty { channels.append(DeviceChannel(fd: fd, ownsDescriptor: false, maxRead: Int(agreement.maxWrite), stats: stats)) }
        // Every channel gets a thread of its own, the first too, and this thread only waits.
        // In the background this thread is the one that forked (`FuseSession.daemonize`), and Swift's
        // `Mutex` locks with a thread id cached per thread: here it is still the parent's.
        // Held by this thread, a lock another worker waits on names an owner the kernel cannot
        // find (FUTEX_LOCK_PI: ESRCH), and the daemon traps. Threads made after the fork are right.
        var workers: [pthread_t] = []
        for channel in channels {
            let context = Unmanaged.passRetained(WorkerContext(loop: self, channel: channel)).toOpaque()
            var thread = pthread_t()
            if pthread_create(&thread, nil, { arg in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(arg!).takeRetainedValue()
                ctx.loop.serve(ctx.channel)
                return nil
            }, context) == 0 {
                workers.append(thread)
            } else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
            }
        }
        if workers.isEmpty { serve(channels[0]) }  // no thread could be made: serve from here
        for t in workers { pthread_join(t, nil) }
        return ringLost.load(ordering: .acquiring) ? 1 : 0
    }

    /// Starts `UringWorker.perCPU` ring workers for each possible CPU's queue, CPU by CPU, each
    /// on a clone of the connection's descriptor; they set up their rings and wait for the
    /// handshake's decision (`RingQueues`).
    private func startRingWorkers(_ threads: inout [pthread_t], _ workers: inout [UringWorker]) -> RingQueues {
        let queues = RingQueues(queues: UringSupport.possibleCPUs)
        for index in 0..<(queues.count * UringWorker.perCPU) {
            let cpu = index % queues.count
            guard let clone = Self.clone(fd) else {
                queues.workerNotStarted(errno: errno)
                break
            }
            let worker = UringWorker(qid: UInt16(cpu), fd: clone, loop: self)
            let context = Unmanaged.passRetained(RingWorkerContext(worker: worker, queues: queues)).toOpaque()
            var thread = pthread_t()
            let e = pthread_create(&thread, nil, { arg in
                let ctx = Unmanaged<RingWorkerContext>.fromOpaque(arg!).takeRetainedValue()
                ctx.worker.run(depth: UringWorker.depth, queues: ctx.queues)
                return nil
            }, context)
            if e == 0 {
                queues.workerStarted()
                threads.append(thread)
                workers.append(worker)
            } else {
                Unmanaged<RingWorkerContext>.fromOpaque(context).release()
                Sys.close(clone)
                queues.workerNotStarted(errno: e)
            }
        }
        return queues
    }

    /// A ring worker of `queue` that served ended with `errno` (the kernel refused its
    /// registration, or its ring failed): when its queue has no worker left, the kernel holds
    /// that queue's requests for good (`RingQueues`), so the session ends, saying why.
    func ringWorkerFailed(queue: Int, errno: Int32) {
        guard ringQueues?.failed(queue) == true else { return }
        ringLost.store(true, ordering: .releasing)
        let line = "unionfs-swift: no io_uring worker is left for CPU \(queue)'s queue (\(String(cString: strerror(errno)))), "
            + "and the kernel would hold its requests for good: unmounting (mount with uring=off to use /dev/fuse)\n"
        _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
        onRingLost?()
    }

    /// A new descriptor on the same connection with its own request queue, or nil.
    static func clone(_ fd: Int32) -> Int32? {
        guard let dup = try? Sys.openat(AT_FDCWD, "/dev/fuse", O_RDWR) else { return nil }
        var master = UInt32(bitPattern: fd)
        // FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t)
        if ioctl(dup, UInt(0x8004_e500), &master) != 0 {
            Sys.close(dup)
            return nil
        }
        return dup
    }

    /// Reads INIT, agrees, answers; tells the filesystem and the connection what was agreed.
    func handshake() -> InitAgreement? {
        let size = Int(InitAgreement.pages) * 4096 + 4096
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n: Int
            do throws(Errno) { n = try Sys.read(fd, buffer) } catch {
                if error == .noSuchFileOrDirectory || error == .resourceTemporarilyUnavailable { continue }
                return nil
            }
            let message = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            guard let (header, op) = try? RequestDecoder().decode(message) else { return nil }
            guard case .`init`(let offer) = op else {
                _ = DeviceChannel.write(fd, unique: header.unique, field: -EIO, .init(start: nil, count: 0), .init(start: nil, count: 0))
                continue
            }
            let fs = connection.fileSystem
            let writeback = fs.options.writebackCache && !fs.isReadOnly
            let passthrough = fs.options.passthrough != .off && FuseSession.passthroughUnavailable(fs) == nil
            guard let agreed = InitAgreement.negotiate(offer, writeback: writeback, passthrough: passthrough,
                                                     uring: ringQueues != nil && ringSetupError == 0,
                                                     readdirplusAuto: fs.options.readdirplusAuto,
                                                     posixACL: !fs.options.noACL) else {
                // A major other than 7: say which we speak and wait for the kernel to retry.
                _ = DeviceChannel.write(fd, unique: header.unique, field: offer.major > 7 ? 0 : -EPROTO,
                                        .init(start: nil, count: 0), .init(start: nil, count: 0))
                if offer.major > 7 { continue }
                return nil
            }
            fs.writebackCache.store(agreed.writebackCache, ordering: .relaxed)
            fs.killPrivileges.store(agreed.killPrivilegesV2, ordering: .relaxed)
            connection.opensDirectoriesItself.store(offer.flags & InitFlag.noOpendirSupport != 0, ordering: .relaxed)
            connection.appliesUmask.store(agreed.daemonAppliesUmask, ordering: .relaxed)
            decoder.setxattrExt = agreed.setxattrExt
            connection.device.store(fd, ordering: .relaxed)
            if agreed.passthrough {
                connection.passthrough.enable(device: fd)
            } else if fs.options.passthrough == .on {
                // Checked before mounting but for this: the kernel's own answer. The INIT is
                // refused, so the mount fails now instead of serving without passthrough.
                let line = "unionfs-swift: passthrough=on cannot be honoured: the kernel did not offer FUSE_PASSTHROUGH "
                    + "(Linux 6.9+ built with CONFIG_FUSE_PASSTHROUGH)\n"
                _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
                _ = DeviceChannel.write(fd, unique: header.unique, field: -EPROTO, .init(start: nil, count: 0), .init(start: nil, count: 0))
                return nil
            }
            agreement = agreed
            let sent: Int32 = withUnsafeTemporaryAllocation(byteCount: WireSize.initOut, alignment: 8) { out in
                var w = WireWriter(out.baseAddress!)
                agreed.encode(&w)
                return DeviceChannel.write(fd, unique: header.unique, field: 0, UnsafeRawBufferPointer(out), .init(start: nil, count: 0))
            }
            guard sent == 0 else { return nil }
            // The kernel applied the reply within that write: its readahead is final until set.
            readahead?.apply()
            return agreed
        }
    }

    /// One worker: reads and answers requests on `channel` until the connection ends.
    func serve(_ channel: DeviceChannel) {
        let size = agreement?.requestBufferSize ?? 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n: Int
            do throws(Errno) { n = try Sys.read(channel.fd, buffer) } catch {
                // ENOENT: the request was interrupted before it was read; EAGAIN: another
                // reader took it. ENODEV: unmounted. Anything else ends this worker too.
                if error == .noSuchFileOrDirectory || error == .resourceTemporarilyUnavailable { continue }
                return
            }
            dispatch(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), channel)
        }
    }

    /// Decodes one request and hands it to its handler.
    func dispatch(_ message: UnsafeRawBufferPointer, _ channel: ReplySink) {
        let start = TransportStats.now()
        let header: InHeader, op: Operation
        do throws(ProtocolError) { (header, op) = try decoder.decode(message) } catch {
            // Answer what has a readable header; a message without one cannot be answered.
            if let h = try? RequestDecoder.header(message) {
                channel.send(unique: h.unique, error: error.errno)
            }
            return
        }
        if debug { trace(header) }
        if case .write(_, _, _, _, let data) = op { stats.bytesWritten.add(UInt64(data.count), ordering: .relaxed) }
        let r = Reply(.device(Unmanaged<ReplySink>.passUnretained(channel), unique: header.unique),
                      caller: RequestCaller(uid: header.uid, gid: header.gid, pid: pid_t(bitPattern: header.pid)))
        Self.handle(op, header, r, connection, killPrivilegesV2: agreement?.killPrivilegesV2 ?? false)
        stats.record(opcode: header.opcode, nanoseconds: TransportStats.now() &- start)
    }

    private func trace(_ h: InHeader) {
        let name = Opcode(rawValue: h.opcode)?.label ?? "UNKNOWN"
        let line = "unique: \(h.unique), opcode: \(name) (\(h.opcode)), nodeid: \(h.node), insize: \(h.length), pid: \(h.pid)\n"
        _ = Array(line.utf8).withUnsafeBytes { try? Sys.write(STDERR_FILENO, $0) }
    }
}

/// What a ring worker's thread needs, handed over through pthread_create's argument.
private final class RingWorkerContext {
    let worker: UringWorker
    let queues: RingQueues
    init(worker: UringWorker, queues: RingQueues) { self.worker = worker; self.queues = queues }
}

/// What a worker thread needs, handed over through pthread_create's argument.
private final class WorkerContext {
    let loop: DeviceLoop
    let channel: DeviceChannel
    init(loop: DeviceLoop, channel: DeviceChannel) { self.loop = loop; self.channel = channel }
}
