import Glibc
import SystemPackage
import UnionFSCore

/// Who sent a request: the calling process as the kernel reports it.
struct RequestCaller: Sendable {
    let uid: uid_t
    let gid: gid_t
    let pid: pid_t

    /// The caller's owner for new entries.
    var owner: Caller { Caller(uid: uid, gid: gid) }

    /// Whether the caller has `gid` as its own or a supplementary group (read from /proc only
    /// when asked: most requests never need it).
    var groupCheck: (gid_t) -> Bool {
        let own = gid, pid = pid
        return { gid in own == gid || SupplementaryGroups.of(pid).contains(gid) }
    }
}

/// Where a reply goes: the transport the request came on (a `/dev/fuse` descriptor,
/// `DeviceChannel`, or an io_uring entry, `UringEntry`; either outlives every request it
/// carries: unretained, so a reply stays trivially destroyed) with the request's `unique`.
/// Handlers only ever see `Reply`, never which transport answers.
struct ReplyChannel {
    let channel: Unmanaged<ReplySink>
    let unique: UInt64

    static func device(_ channel: Unmanaged<ReplySink>, unique: UInt64) -> ReplyChannel {
        ReplyChannel(channel: channel, unique: unique)
    }
}

/// One transport's way of sending an answer: a `writev` on `/dev/fuse` (`DeviceChannel`), or
/// the ring entry's buffers committed with the next fetch (`UringEntry`). A class, not a
/// protocol, so a reply holds one unretained pointer and a call is one vtable dispatch.
class ReplySink: @unchecked Sendable {
    /// An error reply (0: success without payload).
    func send(unique: UInt64, error: Int32) {}
    /// A success reply with `a` then `b` as its payload.
    func send(unique: UInt64, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) {}
    /// Answers a read with up to `size` bytes at `offset` of `file`.
    func sendData(unique: UInt64, from file: Int32, size: Int, offset: Int64) {}
}

/// The answer to one request, which must be given exactly once.
///
/// Every answering method consumes the reply, so the compiler rejects a second answer; a reply
/// dropped without an answer sends `EIO` from `deinit`, so the caller never hangs. Every answer
/// is encoded in the kernel's layout (`ReplyLayout`) and handed to the request's transport
/// (`ReplySink`): one `writev` on `/dev/fuse`, or the ring entry's buffers and a commit.
struct Reply: ~Copyable {
    let channel: ReplyChannel
    let caller: RequestCaller

    init(_ channel: ReplyChannel, caller: RequestCaller) {
        self.channel = channel
        self.caller = caller
    }

    deinit { transmit(error: EIO) }

    // MARK: the transport

    /// Sends an error (0: success with no payload).
    private func transmit(error: Int32) {
        channel.channel.takeUnretainedValue().send(unique: channel.unique, error: error)
    }

    /// Sends a success with `a` then `b` as the payload (either may be empty).
    private func transmit(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        channel.channel.takeUnretainedValue().send(unique: channel.unique, a, b)
    }

    /// Encodes `size` bytes with `body` on the stack and sends them.
    private func transmit(size: Int, _ body: (inout WireWriter) -> Void) {
        withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) { buffer in
            var w = WireWriter(buffer.baseAddress!)
            body(&w)
            transmit(UnsafeRawBufferPointer(rebasing: buffer[0..<w.offset]))
        }
    }

    // MARK: answers

    consuming func error(_ e: Errno) {
        transmit(error: e.rawValue)
        discard self
    }

    consuming func ok() {
        transmit(error: 0)
        discard self
    }

    /// The "OK or errno" answer of most write operations: runs `body`, answers its error or OK.
    consuming func ok(_ body: () throws(Errno) -> Void) {
        do throws(Errno) {
            try body()
            transmit(error: 0)
        } catch { transmit(error: error.rawValue) }
        discard self
    }

    /// For FORGET and BATCH_FORGET: the kernel expects no answer.
    consuming func none() {
        discard self
    }

    /// An entry (`node` 0: a negative entry cached for `timeout`).
    consuming func entry(node: UInt64, _ st: stat, timeout: Double) {
        transmit(size: WireSize.entryOut) { ReplyLayout.entry(node: node, st, timeout: timeout, &$0) }
        discard self
    }

    consuming func create(node: UInt64, _ st: stat, timeout: Double, open: OpenReply) {
        transmit(size: WireSize.entryOut + WireSize.openOut) { w in
            ReplyLayout.entry(node: node, st, timeout: timeout, &w)
            ReplyLayout.open(fh: open.fh, flags: open.flags, backingID: open.backingID, &w)
        }
        discard self
    }

    consuming func attributes(_ st: stat, timeout: Double) {
        transmit(size: WireSize.attrOut) { ReplyLayout.attrOut(st, timeout: timeout, &$0) }
        discard self
    }

    consuming func statx(_ st: stat, timeout: Double) {
        transmit(size: WireSize.statxOut) { ReplyLayout.statx(st, timeout: timeout, &$0) }
        discard self
    }

    consuming func open(_ o: OpenReply) {
        transmit(size: WireSize.openOut) { ReplyLayout.open(fh: o.fh, flags: o.flags, backingID: o.backingID, &$0) }
        discard self
    }

    /// Raw bytes: a readlink target (no NUL), a listing, xattr data, read data.
    consuming func bytes(_ b: UnsafeRawBufferPointer) {
        transmit(b)
        discard self
    }

    consuming func bytes(_ b: [UInt8]) {
        b.withUnsafeBytes { transmit($0) }
        discard self
    }

    /// `size` bytes at `offset` of `fd` (fewer at the end of the file), read into the channel's
    /// buffer and sent with the header in one `writev`.
    consuming func data(from fd: Int32, size: Int, offset: Int64) {
        channel.channel.takeUnretainedValue().sendData(unique: channel.unique, from: fd, size: size, offset: offset)
        discard self
    }

    consuming func written(_ count: Int) {
        transmit(size: WireSize.writeOut) { w in w.put(UInt32(clamping: count)); w.put(UInt32(0)) }
        discard self
    }

    consuming func statfs(_ s: statvfs) {
        transmit(size: WireSize.statfsOut) { ReplyLayout.statfs(s, &$0) }
        discard self
    }

    /// getxattr/listxattr: the size asked for, or the bytes.
    consuming func xattr(_ answer: XattrAnswer) {
        switch answer {
        case .size(let n): transmit(size: WireSize.getxattrOut) { w in w.put(UInt32(clamping: n)); w.put(UInt32(0)) }
        case .data(let d): d.withUnsafeBytes { transmit($0) }
        }
        discard self
    }

    consuming func seek(_ offset: Int64) {
        transmit(size: WireSize.lseekOut) { $0.put(offset) }
        discard self
    }
}

/// What an OPEN, OPENDIR or CREATE answers besides the entry.
struct OpenReply {
    var fh: UInt64 = 0
    var flags: UInt32 = 0
    /// A passthrough backing file's id (with `OpenReplyFlag.passthrough`), else 0.
    var backingID: Int32 = 0
}
