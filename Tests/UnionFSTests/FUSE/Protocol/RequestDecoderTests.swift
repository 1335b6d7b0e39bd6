import Glibc
import XCTest
@testable import UnionFSFuse

/// Every opcode the transport serves, decoded from bytes laid out as the kernel's
/// `include/uapi/linux/fuse.h` (7.45) says; and malformed messages refused without a crash.
final class RequestDecoderTests: XCTestCase {
    typealias M = MessageBuilder

    func testHeader() throws {
        let bytes = M.message(.getattr, node: 99, unique: 123, uid: 5, gid: 6, pid: 7) { p in p.u32(0); p.u32(0); p.u64(0) }
        try withDecoded(bytes) { h, op in
            XCTAssertEqual(h, InHeader(length: UInt32(bytes.count), opcode: 3, unique: 123, node: 99, uid: 5, gid: 6, pid: 7, extensionWords: 0))
            XCTAssertEqual(op.describe, Operation.getattr(flags: 0, fh: 0).describe)
        }
    }

    func testNamesPointIntoTheBuffer() throws {
        let bytes = M.message(.lookup) { $0.name("passwd") }
        try bytes.withUnsafeBytes { b in
            let (_, op) = try RequestDecoder().decode(b)
            guard case .lookup(let name) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(name.string, "passwd")
            XCTAssertEqual(name.length, 6)
            XCTAssertEqual(UnsafeRawPointer(name.pointer), b.baseAddress! + 40, "not copied")
        }
    }

    func testEntryOperations() throws {
        try withDecoded(M.message(.lookup) { $0.name("a") }) { _, op in
            guard case .lookup(let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "a")
        }
        try withDecoded(M.message(.forget) { $0.u64(3) }) { _, op in
            guard case .forget(3) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.batchForget) { p in p.u32(2); p.u32(0); p.u64(10); p.u64(1); p.u64(11); p.u64(2) }) { _, op in
            guard case .batchForget(2, let pairs) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(pairs.count, 32)
            XCTAssertEqual(pairs.loadUnaligned(fromByteOffset: 16, as: UInt64.self), 11)
        }
        try withDecoded(M.message(.getattr) { p in p.u32(1); p.u32(0); p.u64(77) }) { _, op in
            guard case .getattr(1, 77) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.readlink)) { _, op in guard case .readlink = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.statfs)) { _, op in guard case .statfs = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.access) { p in p.u32(4); p.u32(0) }) { _, op in
            guard case .access(4) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.statx) { p in p.u32(1); p.u32(0); p.u64(9); p.u32(0x100); p.u32(0x7ff) }) { _, op in
            guard case .statx(1, 9, 0x100, 0x7ff) = op else { return XCTFail("\(op)") }
        }
    }

    func testSetattr() throws {
        let bytes = M.message(.setattr) { p in
            p.u32(SetattrValid.mode | SetattrValid.size | SetattrValid.mtime | SetattrValid.fh); p.u32(0)
            p.u64(5); p.u64(4096); p.u64(0)        // fh, size, lock_owner
            p.u64(11); p.u64(22); p.u64(33)         // atime, mtime, ctime
            p.u32(1); p.u32(2); p.u32(3)            // nsecs
            p.u32(0o100644); p.u32(0); p.u32(1000); p.u32(100); p.u32(0)
        }
        try withDecoded(bytes) { _, op in
            guard case .setattr(let s) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(s, SetattrIn(valid: SetattrValid.mode | SetattrValid.size | SetattrValid.mtime | SetattrValid.fh,
                                        fh: 5, size: 4096, atime: timespec(tv_sec: 11, tv_nsec: 1),
                                        mtime: timespec(tv_sec: 22, tv_nsec: 2), mode: 0o100644, uid: 1000, gid: 100))
            let c = DeviceLoop.changes(s)
            XCTAssertEqual(c.mode, 0o100644)
            XCTAssertEqual(c.size, 4096)
            XCTAssertEqual(c.mtime?.tv_sec, 22)
            XCTAssertNil(c.atime)
            XCTAssertNil(c.uid)
        }
    }

    func testNamespaceOperations() throws {
        try withDecoded(M.message(.symlink) { p in p.name("link"); p.name("../target") }) { _, op in
            guard case .symlink(let n, let t) = op else { return XCTFail("\(op)") }
            XCTAssertEqual([n.string, t.string], ["link", "../target"])
        }
        try withDecoded(M.message(.mknod) { p in p.u32(0o20644); p.u32(0x0801); p.u32(0o22); p.u32(0); p.name("dev") }) { _, op in
            guard case .mknod(0o20644, 0x0801, 0o22, let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "dev")
        }
        try withDecoded(M.message(.mkdir) { p in p.u32(0o755); p.u32(0o22); p.name("d") }) { _, op in
            guard case .mkdir(0o755, 0o22, let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "d")
        }
        try withDecoded(M.message(.unlink) { $0.name("f") }) { _, op in guard case .unlink = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.rmdir) { $0.name("d") }) { _, op in guard case .rmdir = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.rename) { p in p.u64(8); p.name("a"); p.name("b") }) { _, op in
            guard case .rename(8, 0, let a, let b) = op else { return XCTFail("\(op)") }
            XCTAssertEqual([a.string, b.string], ["a", "b"])
        }
        try withDecoded(M.message(.rename2) { p in p.u64(8); p.u32(2); p.u32(0); p.name("a"); p.name("bb") }) { _, op in
            guard case .rename(8, 2, _, let b) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(b.string, "bb")
        }
        try withDecoded(M.message(.link, node: 3) { p in p.u64(42); p.name("hard") }) { h, op in
            guard case .link(42, let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(h.node, 3)
            XCTAssertEqual(n.string, "hard")
        }
        try withDecoded(M.message(.create) { p in p.u32(UInt32(O_WRONLY | O_CREAT)); p.u32(0o100600); p.u32(0o22); p.u32(1); p.name("new") }) { _, op in
            guard case .create(UInt32(O_WRONLY | O_CREAT), 0o100600, 0o22, 1, let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "new")
        }
    }

    func testFileOperations() throws {
        try withDecoded(M.message(.open) { p in p.u32(UInt32(O_RDWR | O_TRUNC)); p.u32(RequestFlag.openKillSUIDGID) }) { _, op in
            guard case .open(UInt32(O_RDWR | O_TRUNC), 1) = op else { return XCTFail("\(op)") }
        }
        let read: (inout M) -> Void = { p in p.u64(5); p.u64(1 << 33); p.u32(131072); p.u32(0); p.u64(0); p.u32(0x8000); p.u32(0) }
        for (opcode, plus) in [(Opcode.read, 0), (.readdir, 1), (.readdirplus, 2)] {
            try withDecoded(M.message(opcode, read)) { _, op in
                let expected = ReadIn(fh: 5, offset: 1 << 33, size: 131072, flags: 0x8000)
                switch (op, plus) {
                case (.read(let a), 0), (.readdir(let a), 1), (.readdirplus(let a), 2): XCTAssertEqual(a, expected)
                default: XCTFail("\(op)")
                }
            }
        }
        let data: [UInt8] = [1, 2, 3, 4, 5]
        try withDecoded(M.message(.write) { p in
            p.u64(6); p.u64(100); p.u32(5); p.u32(RequestFlag.writeKillSUIDGID); p.u64(0); p.u32(2); p.u32(0); p.raw(data)
        }) { _, op in
            guard case .write(6, 100, RequestFlag.writeKillSUIDGID, 2, let d) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(Array(d), data)
        }
        try withDecoded(M.message(.release) { p in p.u64(6); p.u32(2); p.u32(1); p.u64(0) }) { _, op in
            guard case .release(6, 2, 1) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.releasedir) { p in p.u64(0); p.u32(0); p.u32(0); p.u64(0) }) { _, op in
            guard case .releasedir(0) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.flush) { p in p.u64(6); p.u32(0); p.u32(0); p.u64(9) }) { _, op in
            guard case .flush(6) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.fsync) { p in p.u64(6); p.u32(1); p.u32(0) }) { _, op in
            guard case .fsync(6, 1) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.fsyncdir) { p in p.u64(0); p.u32(0); p.u32(0) }) { _, op in
            guard case .fsyncdir(0, 0) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.opendir) { p in p.u32(UInt32(O_RDONLY)); p.u32(0) }) { _, op in
            guard case .opendir(0) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.fallocate) { p in p.u64(6); p.u64(10); p.u64(20); p.u32(1); p.u32(0) }) { _, op in
            guard case .fallocate(6, 10, 20, 1) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.lseek) { p in p.u64(6); p.u64(4096); p.u32(3); p.u32(0) }) { _, op in
            guard case .lseek(6, 4096, 3) = op else { return XCTFail("\(op)") }
        }
        let cfr: (inout M) -> Void = { p in p.u64(1); p.u64(2); p.u64(3); p.u64(4); p.u64(5); p.u64(6); p.u64(0) }
        for opcode in [Opcode.copyFileRange, .copyFileRange64] {
            try withDecoded(M.message(opcode, cfr)) { _, op in
                guard case .copyFileRange(1, 2, 3, 4, 5, 6, 0) = op else { return XCTFail("\(op)") }
            }
        }
        try withDecoded(M.message(.interrupt) { $0.u64(55) }) { _, op in guard case .interrupt(55) = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.destroy)) { _, op in guard case .destroy = op else { return XCTFail("\(op)") } }
        try withDecoded(M.message(.syncfs) { $0.u64(0) }) { _, op in guard case .syncfs = op else { return XCTFail("\(op)") } }
    }

    func testXattrs() throws {
        try withDecoded(M.message(.setxattr) { p in p.u32(3); p.u32(1); p.name("user.a"); p.raw([7, 8, 9]) }) { _, op in
            guard case .setxattr(1, let n, let v, 0) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "user.a")
            XCTAssertEqual(Array(v), [7, 8, 9])
        }
        // With SETXATTR_EXT the fixed part is 16 bytes, with setxattr_flags (ACL_KILL_SGID here).
        try withDecoded(M.message(.setxattr) { p in p.u32(2); p.u32(2); p.u32(1); p.u32(0); p.name("user.b"); p.raw([1, 2]) },
                        RequestDecoder(setxattrExt: true)) { _, op in
            guard case .setxattr(2, let n, let v, SetxattrFlag.aclKillSGID) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "user.b")
            XCTAssertEqual(Array(v), [1, 2])
        }
        try withDecoded(M.message(.getxattr) { p in p.u32(0); p.u32(0); p.name("security.selinux") }) { _, op in
            guard case .getxattr(0, let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "security.selinux")
        }
        try withDecoded(M.message(.listxattr) { p in p.u32(4096); p.u32(0) }) { _, op in
            guard case .listxattr(4096) = op else { return XCTFail("\(op)") }
        }
        try withDecoded(M.message(.removexattr) { $0.name("user.a") }) { _, op in
            guard case .removexattr(let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "user.a")
        }
    }

    func testInit() throws {
        // 7.45 with flags2 (INIT_EXT) and 7.31 without it (16 bytes).
        try withDecoded(M.message(.`init`) { p in
            p.u32(7); p.u32(45); p.u32(131072); p.u32(UInt32(InitFlag.initExt | InitFlag.parallelDirops)); p.u32(1 << 5)
            p.raw([UInt8](repeating: 0, count: 44))
        }) { _, op in
            guard case .`init`(let i) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(i, InitIn(major: 7, minor: 45, maxReadahead: 131072,
                                     flags: InitFlag.initExt | InitFlag.parallelDirops | InitFlag.passthrough))
        }
        try withDecoded(M.message(.`init`) { p in p.u32(7); p.u32(31); p.u32(4096); p.u32(1) }) { _, op in
            guard case .`init`(let i) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(i.flags, 1)
        }
    }

    func testExtensionsAreNotPayload() throws {
        try withDecoded(M.message(.lookup, extensionWords: 2) { $0.name("x") }) { h, op in
            XCTAssertEqual(h.extensionWords, 2)
            guard case .lookup(let n) = op else { return XCTFail("\(op)") }
            XCTAssertEqual(n.string, "x")
        }
    }

    func testUnservedOpcodesAreUnsupported() throws {
        for opcode in [Opcode.getlk, .setlk, .setlkw, .bmap, .ioctl, .poll, .tmpfile, .setupMapping] {
            try withDecoded(M.message(opcode)) { _, op in
                guard case .unsupported(opcode.rawValue) = op else { return XCTFail("\(opcode): \(op)") }
            }
        }
        var unknown = M.message(.statfs)
        unknown[4] = 200
        try withDecoded(unknown) { _, op in guard case .unsupported(200) = op else { return XCTFail("\(op)") } }
    }

    // MARK: malformed messages

    func testShortHeaderAndBadLength() {
        XCTAssertThrowsError(try decode([1, 2, 3])) { XCTAssertEqual($0 as? ProtocolError, .short) }
        XCTAssertThrowsError(try decode([])) { XCTAssertEqual($0 as? ProtocolError, .short) }
        var m = M.message(.lookup) { $0.name("a") }
        m[0] = 200  // says 200 bytes, has 42
        XCTAssertThrowsError(try decode(m)) { XCTAssertEqual($0 as? ProtocolError, .badLength) }
        // Extensions longer than the message.
        var e = M.message(.statfs)
        e[36] = 9
        XCTAssertThrowsError(try decode(e)) { XCTAssertEqual($0 as? ProtocolError, .badLength) }
    }

    func testNamesMustBeTerminatedAndNonEmpty() {
        var m = M.message(.lookup) { $0.raw(Array("abc".utf8)) }
        XCTAssertThrowsError(try decode(m)) { XCTAssertEqual($0 as? ProtocolError, .unterminatedName) }
        m = M.message(.lookup) { $0.raw([0]) }
        XCTAssertThrowsError(try decode(m)) { XCTAssertEqual($0 as? ProtocolError, .emptyName) }
        m = M.message(.rename) { p in p.u64(1); p.name("a"); p.raw(Array("b".utf8)) }
        XCTAssertThrowsError(try decode(m)) { XCTAssertEqual($0 as? ProtocolError, .unterminatedName) }
        XCTAssertEqual(ProtocolError.unterminatedName.errno, EINVAL)
        XCTAssertEqual(ProtocolError.short.errno, EIO)
    }

    func testDataLongerThanTheMessageIsRefused() {
        let m = M.message(.write) { p in p.u64(6); p.u64(0); p.u32(4096); p.u32(0); p.u64(0); p.u32(0); p.u32(0); p.raw([1, 2]) }
        XCTAssertThrowsError(try decode(m)) { XCTAssertEqual($0 as? ProtocolError, .short) }
        let b = M.message(.batchForget) { p in p.u32(1_000_000); p.u32(0); p.u64(1); p.u64(1) }
        XCTAssertThrowsError(try decode(b)) { XCTAssertEqual($0 as? ProtocolError, .short) }
    }

    /// Every opcode with every truncation of a plausible payload: an error or a value, never
    /// a crash or a read past the end.
    func testEveryTruncationOfEveryOpcode() {
        let full = [UInt8](repeating: 0x41, count: 120) + [0] + [UInt8](repeating: 0x42, count: 8) + [0]
        for opcode in Opcode.allCases {
            for cut in 0...full.count {
                let m = M.message(opcode) { $0.raw(Array(full[0..<cut])) }
                _ = try? decode(m)
                _ = try? decode(m, RequestDecoder(setxattrExt: true))
            }
        }
        // Random bytes after a valid header.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let opcode = UInt32.random(in: 0...60, using: &rng)
            let payload = (0..<Int.random(in: 0...96, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var m = M.message(.statfs) { $0.raw(payload) }
            withUnsafeBytes(of: opcode.littleEndian) { for i in 0..<4 { m[4 + i] = $0[i] } }
            _ = try? decode(m)
        }
    }
}
