import Glibc

/// `fuse_in_header`: who asks what about which node.
struct InHeader: Equatable {
    var length: UInt32
    var opcode: UInt32
    var unique: UInt64
    var node: UInt64
    var uid: UInt32
    var gid: UInt32
    var pid: UInt32
    /// Length of the extensions after the payload, in 8-byte units (security context,
    /// supplementary group): skipped, the payload ends before them.
    var extensionWords: UInt16
}

/// `fuse_setattr_in`, the fields this filesystem uses.
struct SetattrIn: Equatable {
    var valid: UInt32
    var fh: UInt64
    var size: UInt64
    var atime: timespec
    var mtime: timespec
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32

    static func == (a: SetattrIn, b: SetattrIn) -> Bool {
        a.valid == b.valid && a.fh == b.fh && a.size == b.size && a.mode == b.mode && a.uid == b.uid
            && a.gid == b.gid && a.atime.tv_sec == b.atime.tv_sec && a.atime.tv_nsec == b.atime.tv_nsec
            && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
    }
}

/// `fuse_read_in` (READ, READDIR, READDIRPLUS).
struct ReadIn: Equatable {
    var fh: UInt64
    var offset: UInt64
    var size: UInt32
    var flags: UInt32
}

/// `fuse_init_in`: what the kernel offers.
struct InitIn: Equatable {
    var major: UInt32
    var minor: UInt32
    var maxReadahead: UInt32
    /// `flags`, with `flags2` in the high half when the kernel set `INIT_EXT`.
    var flags: UInt64
}

/// One request, decoded in place: names and data point into the read buffer.
enum Operation: Equatable {
    case lookup(name: WireName)
    case forget(count: UInt64)
    /// BATCH_FORGET: `count` pairs (node, count) of 16 bytes each, in place.
    case batchForget(count: Int, pairs: UnsafeRawBufferPointer)
    case getattr(flags: UInt32, fh: UInt64)
    case setattr(SetattrIn)
    case readlink
    case symlink(name: WireName, target: WireName)
    case mknod(mode: UInt32, rdev: UInt32, umask: UInt32, name: WireName)
    case mkdir(mode: UInt32, umask: UInt32, name: WireName)
    case unlink(name: WireName)
    case rmdir(name: WireName)
    /// RENAME and RENAME2 (RENAME has no flags).
    case rename(newParent: UInt64, flags: UInt32, name: WireName, newName: WireName)
    case link(node: UInt64, newName: WireName)
    case open(flags: UInt32, openFlags: UInt32)
    case read(ReadIn)
    case write(fh: UInt64, offset: UInt64, writeFlags: UInt32, flags: UInt32, data: UnsafeRawBufferPointer)
    case statfs
    case release(fh: UInt64, flags: UInt32, releaseFlags: UInt32)
    case fsync(fh: UInt64, flags: UInt32)
    /// `setxattrFlags`: FUSE_SETXATTR_ACL_KILL_SGID (bit 0), with SETXATTR_EXT; else 0.
    case setxattr(flags: UInt32, name: WireName, value: UnsafeRawBufferPointer, setxattrFlags: UInt32)
    case getxattr(size: UInt32, name: WireName)
    case listxattr(size: UInt32)
    case removexattr(name: WireName)
    case flush(fh: UInt64)
    case `init`(InitIn)
    case opendir(flags: UInt32)
    case readdir(ReadIn)
    case readdirplus(ReadIn)
    case releasedir(fh: UInt64)
    case fsyncdir(fh: UInt64, flags: UInt32)
    case access(mask: UInt32)
    case create(flags: UInt32, mode: UInt32, umask: UInt32, openFlags: UInt32, name: WireName)
    case interrupt(unique: UInt64)
    case destroy
    case fallocate(fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32)
    case lseek(fh: UInt64, offset: UInt64, whence: UInt32)
    case copyFileRange(fhIn: UInt64, offsetIn: UInt64, nodeOut: UInt64, fhOut: UInt64,
                       offsetOut: UInt64, length: UInt64, flags: UInt64)
    case statx(getattrFlags: UInt32, fh: UInt64, flags: UInt32, mask: UInt32)
    case syncfs
    /// Known or unknown, but not served here: answered `ENOSYS` (the kernel then stops asking).
    case unsupported(opcode: UInt32)

    static func == (a: Operation, b: Operation) -> Bool { a.describe == b.describe }

    /// A comparable rendering for tests (pointers shown by their contents).
    var describe: String {
        switch self {
        case .batchForget(let n, let p): return "batchForget(\(n),\(Array(p)))"
        case .write(let fh, let o, let wf, let f, let d): return "write(\(fh),\(o),\(wf),\(f),\(Array(d)))"
        case .setxattr(let f, let n, let v, let x): return "setxattr(\(f),\(n.string),\(Array(v)),\(x))"
        default: return String(describing: self)
        }
    }
}

/// Decodes requests in the layouts the session agreed to at INIT.
struct RequestDecoder: Sendable {
    /// `SETXATTR_EXT` was agreed: `fuse_setxattr_in` is 16 bytes (with `setxattr_flags`).
    var setxattrExt = false

    /// Decodes one message of `buffer` (as read from the device: exactly one message).
    func decode(_ buffer: UnsafeRawBufferPointer) throws(ProtocolError) -> (InHeader, Operation) {
        let header = try Self.header(buffer)
        let payloadEnd = Int(header.length) - Int(header.extensionWords) * 8
        guard payloadEnd >= WireSize.inHeader else { throw .badLength }
        var r = WireReader(UnsafeRawBufferPointer(rebasing: buffer[WireSize.inHeader..<payloadEnd]))
        return (header, try operation(header.opcode, &r))
    }

    /// The header, checked against the buffer's length.
    static func header(_ buffer: UnsafeRawBufferPointer) throws(ProtocolError) -> InHeader {
        var r = WireReader(buffer)
        let h = InHeader(length: try r.u32(), opcode: try r.u32(), unique: try r.u64(), node: try r.u64(),
                         uid: try r.u32(), gid: try r.u32(), pid: try r.u32(), extensionWords: try r.load())
        guard Int(h.length) == buffer.count else { throw .badLength }
        return h
    }

    private func operation(_ opcode: UInt32, _ r: inout WireReader) throws(ProtocolError) -> Operation {
        guard let op = Opcode(rawValue: opcode) else { return .unsupported(opcode: opcode) }
        switch op {
        case .lookup: return .lookup(name: try r.name())
        case .forget: return .forget(count: try r.u64())
        case .batchForget:
            let count = Int(try r.u32())
            try r.skip(4)
            guard count <= r.remaining / 16 else { throw .short }
            return .batchForget(count: count, pairs: try r.bytes(count * 16))
        case .getattr:
            let flags = try r.u32()
            try r.skip(4)
            return .getattr(flags: flags, fh: try r.u64())
        case .setattr: return .setattr(try Self.setattr(&r))
        case .readlink: return .readlink
        case .symlink: return .symlink(name: try r.name(), target: try r.name())
        case .mknod:
            let mode = try r.u32(), rdev = try r.u32(), umask = try r.u32()
            try r.skip(4)
            return .mknod(mode: mode, rdev: rdev, umask: umask, name: try r.name())
        case .mkdir:
            let mode = try r.u32(), umask = try r.u32()
            return .mkdir(mode: mode, umask: umask, name: try r.name())
        case .unlink: return .unlink(name: try r.name())
        case .rmdir: return .rmdir(name: try r.name())
        case .rename:
            let newParent = try r.u64()
            return .rename(newParent: newParent, flags: 0, name: try r.name(), newName: try r.name())
        case .rename2:
            let newParent = try r.u64(), flags = try r.u32()
            try r.skip(4)
            return .rename(newParent: newParent, flags: flags, name: try r.name(), newName: try r.name())
        case .link:
            let node = try r.u64()
            return .link(node: node, newName: try r.name())
        case .open: return .open(flags: try r.u32(), openFlags: try r.u32())
        case .opendir:
            let flags = try r.u32()
            try r.skip(4)
            return .opendir(flags: flags)
        case .read: return .read(try Self.read(&r))
        case .readdir: return .readdir(try Self.read(&r))
        case .readdirplus: return .readdirplus(try Self.read(&r))
        case .write:
            let fh = try r.u64(), offset = try r.u64(), size = try r.u32(), writeFlags = try r.u32()
            try r.skip(8)  // lock_owner
            let flags = try r.u32()
            try r.skip(4)
            return .write(fh: fh, offset: offset, writeFlags: writeFlags, flags: flags, data: try r.bytes(Int(size)))
        case .statfs: return .statfs
        case .release, .releasedir:
            let fh = try r.u64(), flags = try r.u32(), releaseFlags = try r.u32()
            try r.skip(8)
            return op == .release ? .release(fh: fh, flags: flags, releaseFlags: releaseFlags) : .releasedir(fh: fh)
        case .fsync, .fsyncdir:
            let fh = try r.u64(), flags = try r.u32()
            try r.skip(4)
            return op == .fsync ? .fsync(fh: fh, flags: flags) : .fsyncdir(fh: fh, flags: flags)
        case .setxattr:
            let size = try r.u32(), flags = try r.u32()
            var setxattrFlags: UInt32 = 0
            if setxattrExt { setxattrFlags = try r.u32(); try r.skip(4) }  // setxattr_flags, padding
            let name = try r.name()
            return .setxattr(flags: flags, name: name, value: try r.bytes(Int(size)), setxattrFlags: setxattrFlags)
        case .getxattr:
            let size = try r.u32()
            try r.skip(4)
            return .getxattr(size: size, name: try r.name())
        case .listxattr:
            let size = try r.u32()
            try r.skip(4)
            return .listxattr(size: size)
        case .removexattr: return .removexattr(name: try r.name())
        case .flush:
            let fh = try r.u64()
            try r.skip(16)
            return .flush(fh: fh)
        case .`init`:
            let major = try r.u32(), minor = try r.u32(), readahead = try r.u32()
            var flags = UInt64(try r.u32())
            // flags2 exists from 7.36; an older kernel sends 16 bytes.
            if flags & InitFlag.initExt != 0, r.remaining >= 4 { flags |= UInt64(try r.u32()) << 32 }
            return .`init`(InitIn(major: major, minor: minor, maxReadahead: readahead, flags: flags))
        case .access:
            let mask = try r.u32()
            try r.skip(4)
            return .access(mask: mask)
        case .create:
            let flags = try r.u32(), mode = try r.u32(), umask = try r.u32(), openFlags = try r.u32()
            return .create(flags: flags, mode: mode, umask: umask, openFlags: openFlags, name: try r.name())
        case .interrupt: return .interrupt(unique: try r.u64())
        case .destroy: return .destroy
        case .fallocate:
            let fh = try r.u64(), offset = try r.u64(), length = try r.u64(), mode = try r.u32()
            try r.skip(4)
            return .fallocate(fh: fh, offset: offset, length: length, mode: mode)
        case .lseek:
            let fh = try r.u64(), offset = try r.u64(), whence = try r.u32()
            try r.skip(4)
            return .lseek(fh: fh, offset: offset, whence: whence)
        case .copyFileRange, .copyFileRange64:
            return .copyFileRange(fhIn: try r.u64(), offsetIn: try r.u64(), nodeOut: try r.u64(),
                                  fhOut: try r.u64(), offsetOut: try r.u64(), length: try r.u64(),
                                  flags: try r.u64())
        case .statx:
            let getattrFlags = try r.u32()
            try r.skip(4)
            let fh = try r.u64(), flags = try r.u32(), mask = try r.u32()
            return .statx(getattrFlags: getattrFlags, fh: fh, flags: flags, mask: mask)
        case .syncfs: return .syncfs
        case .getlk, .setlk, .setlkw, .bmap, .ioctl, .poll, .notifyReply, .setupMapping,
             .removeMapping, .tmpfile:
            return .unsupported(opcode: opcode)
        }
    }

    private static func read(_ r: inout WireReader) throws(ProtocolError) -> ReadIn {
        let fh = try r.u64(), offset = try r.u64(), size = try r.u32()
        try r.skip(4 + 8)  // read_flags, lock_owner
        let flags = try r.u32()
        try r.skip(4)
        return ReadIn(fh: fh, offset: offset, size: size, flags: flags)
    }

    private static func setattr(_ r: inout WireReader) throws(ProtocolError) -> SetattrIn {
        let valid = try r.u32()
        try r.skip(4)
        let fh = try r.u64(), size = try r.u64()
        try r.skip(8)  // lock_owner
        let atime = try r.u64(), mtime = try r.u64()
        try r.skip(8)  // ctime
        let atimensec = try r.u32(), mtimensec = try r.u32()
        try r.skip(4)  // ctimensec
        let mode = try r.u32()
        try r.skip(4)
        let uid = try r.u32(), gid = try r.u32()
        try r.skip(4)
        return SetattrIn(valid: valid, fh: fh, size: size,
                         atime: timespec(tv_sec: Int(truncatingIfNeeded: atime), tv_nsec: Int(atimensec)),
                         mtime: timespec(tv_sec: Int(truncatingIfNeeded: mtime), tv_nsec: Int(mtimensec)),
                         mode: mode, uid: uid, gid: gid)
    }
}
