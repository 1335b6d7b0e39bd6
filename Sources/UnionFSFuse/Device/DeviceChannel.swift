import Glibc
import SystemPackage
import UnionFSCore

/// One `/dev/fuse` descriptor of a mount, served by one worker thread: the connection's own
/// descriptor or a clone of it (`FUSE_DEV_IOC_CLONE`), whose requests the kernel queues apart
/// and whose replies must be written to the same descriptor.
///
/// Every reply is one `writev`: the out header and up to two parts of payload in place. A reply
/// the kernel no longer waits for (the request was interrupted, `ENOENT`) or a connection gone
/// (`ENODEV`) is dropped: there is no one left to tell.
final class DeviceChannel: ReplySink, @unchecked Sendable {
    let fd: Int32
    /// Whether `fd` is ours to close (a clone) or the session's.
    private let ownsDescriptor: Bool
    /// Where a read's data is gathered before its reply (one worker uses a channel at a time).
    private let dataBuffer: UnsafeMutableRawBufferPointer

    /// Where the data bytes of reads are counted.
    let stats: TransportStats

    init(fd: Int32, ownsDescriptor: Bool, maxRead: Int, stats: TransportStats) {
        self.fd = fd
        self.stats = stats
        self.ownsDescriptor = ownsDescriptor
        dataBuffer = .allocate(byteCount: max(maxRead, 4096), alignment: 4096)
        super.init()
    }

    deinit {
        dataBuffer.deallocate()
        if ownsDescriptor { Sys.close(fd) }
    }

    /// An error reply (0: success without payload).
    override func send(unique: UInt64, error: Int32) {
        send(unique: unique, error: error, UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// A success reply with `a` then `b` as its payload.
    override func send(unique: UInt64, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) {
        send(unique: unique, error: 0, a, b)
    }

    /// A notification (`unique` 0, the code in the error field), as one `writev`.
    func notify(_ code: NotifyCode, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int32 {
        Self.write(fd, unique: 0, field: code.rawValue, a, b)
    }

    /// Answers a read with up to `size` bytes at `offset` of `fd`.
    override func sendData(unique: UInt64, from file: Int32, size: Int, offset: Int64) {
        let want = min(size, dataBuffer.count)
        do throws(Errno) {
            let n = try Sys.pread(file, UnsafeMutableRawBufferPointer(rebasing: dataBuffer[0..<want]), offset)
            stats.bytesRead.add(UInt64(n), ordering: .relaxed)
            send(unique: unique, UnsafeRawBufferPointer(rebasing: dataBuffer[0..<n]), UnsafeRawBufferPointer(start: nil, count: 0))
        } catch { send(unique: unique, error: error.rawValue) }
    }

    /// `error`: 0 for success with the payload, else an errno (the payload is then dropped).
    /// The write is timed on its own (`stats`): the kernel wakes the caller within it.
    private func send(unique: UInt64, error: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        let start = TransportStats.now()
        _ = error == 0 ? Self.write(fd, unique: unique, field: 0, a, b) : Self.write(fd, unique: unique, field: -error, none, none)
        stats.recordReplyWrite(nanoseconds: TransportStats.now() &- start)
    }

    /// Frames and writes one message whose out header carries `field` (a negative errno, 0, or
    /// a notification code); 0 or the errno of the write.
    static func write(_ fd: Int32, unique: UInt64, field: Int32, _ a: UnsafeRawBufferPointer,
                      _ b: UnsafeRawBufferPointer) -> Int32 {
        let length = WireSize.outHeader + a.count + b.count
        var header = (UInt32(length).littleEndian, field.littleEndian, unique.littleEndian)
        return withUnsafeMutableBytes(of: &header) { h in
            var iov = (iovec(iov_base: h.baseAddress, iov_len: WireSize.outHeader),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count))
            let count: Int32 = b.count > 0 ? 3 : (a.count > 0 ? 2 : 1)
            return withUnsafePointer(to: &iov) { p in
                p.withMemoryRebound(to: iovec.self, capacity: 3) { v in
                    do throws(Errno) {
                        _ = try Sys.writev(fd, v, count)
                        return 0
                    } catch { return error.rawValue }
                }
            }
        }
    }
}
