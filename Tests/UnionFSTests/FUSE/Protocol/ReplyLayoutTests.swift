import Glibc
import XCTest
@testable import UnionFSFuse

/// Replies written in the kernel's layouts, checked field by field at the kernel's offsets,
/// and framed with one `writev` (read back through a pipe).
final class ReplyLayoutTests: XCTestCase {
    func encode(_ size: Int, _ body: (inout WireWriter) -> Void) -> [UInt8] {
        var out = [UInt8](repeating: 0xFF, count: size + 64)
        let used = out.withUnsafeMutableBytes { b -> Int in
            var w = WireWriter(b.baseAddress!)
            body(&w)
            return w.offset
        }
        XCTAssertEqual(used, size, "bytes written")
        return Array(out[0..<used])
    }

    func u32(_ b: [UInt8], _ at: Int) -> UInt32 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
    func u64(_ b: [UInt8], _ at: Int) -> UInt64 { b.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt64.self) } }

    func sample() -> stat {
        var st = stat()
        st.st_ino = 1234; st.st_size = 5678; st.st_blocks = 16
        st.st_atim = timespec(tv_sec: 100, tv_nsec: 1); st.st_mtim = timespec(tv_sec: 200, tv_nsec: 2)
        st.st_ctim = timespec(tv_sec: 300, tv_nsec: 3)
        st.st_mode = 0o100644; st.st_nlink = 2; st.st_uid = 1000; st.st_gid = 100; st.st_rdev = 0; st.st_blksize = 4096
        return st
    }

    func testEntryOut() {
        let b = encode(WireSize.entryOut) { ReplyLayout.entry(node: 42, sample(), timeout: 1.5, &$0) }
        XCTAssertEqual(u64(b, 0), 42)          // nodeid
        XCTAssertEqual(u64(b, 8), 1)           // generation
        XCTAssertEqual(u64(b, 16), 1)          // entry_valid
        XCTAssertEqual(u64(b, 24), 1)          // attr_valid
        XCTAssertEqual(u32(b, 32), 500_000_000)
        XCTAssertEqual(u32(b, 36), 500_000_000)
        let a = 40                              // fuse_attr
        XCTAssertEqual(u64(b, a), 1234)
        XCTAssertEqual(u64(b, a + 8), 5678)
        XCTAssertEqual(u64(b, a + 16), 16)
        XCTAssertEqual(u64(b, a + 24), 100)
        XCTAssertEqual(u64(b, a + 32), 200)
        XCTAssertEqual(u64(b, a + 40), 300)
        XCTAssertEqual([u32(b, a + 48), u32(b, a + 52), u32(b, a + 56)], [1, 2, 3])
        XCTAssertEqual(u32(b, a + 60), 0o100644)
        XCTAssertEqual(u32(b, a + 64), 2)
        XCTAssertEqual([u32(b, a + 68), u32(b, a + 72)], [1000, 100])
        XCTAssertEqual(u32(b, a + 80), 4096)
        XCTAssertEqual(u32(b, a + 84), 0)
    }

    func testNegativeEntryHasNoGeneration() {
        let b = encode(WireSize.entryOut) { ReplyLayout.entry(node: 0, stat(), timeout: 86400, &$0) }
        XCTAssertEqual(u64(b, 0), 0)
        XCTAssertEqual(u64(b, 8), 0)
        XCTAssertEqual(u64(b, 16), 86400)
    }

    func testAttrOpenStatfs() {
        let a = encode(WireSize.attrOut) { ReplyLayout.attrOut(sample(), timeout: 2, &$0) }
        XCTAssertEqual(u64(a, 0), 2)
        XCTAssertEqual(u64(a, 16), 1234)
        let o = encode(WireSize.openOut) { ReplyLayout.open(fh: 1 << 40, flags: OpenReplyFlag.keepCache | OpenReplyFlag.noflush, backingID: 9, &$0) }
        XCTAssertEqual(u64(o, 0), 1 << 40)
        XCTAssertEqual(u32(o, 8), 0b100010)
        XCTAssertEqual(u32(o, 12), 9)
        var s = statvfs()
        s.f_blocks = 10; s.f_bfree = 9; s.f_bavail = 8; s.f_files = 7; s.f_ffree = 6; s.f_bsize = 4096; s.f_namemax = 255; s.f_frsize = 512
        let f = encode(WireSize.statfsOut) { ReplyLayout.statfs(s, &$0) }
        XCTAssertEqual([u64(f, 0), u64(f, 8), u64(f, 16), u64(f, 24), u64(f, 32)], [10, 9, 8, 7, 6])
        XCTAssertEqual([u32(f, 40), u32(f, 44), u32(f, 48)], [4096, 255, 512])
    }

    func testStatx() {
        let b = encode(WireSize.statxOut) { ReplyLayout.statx(sample(), timeout: 1, &$0) }
        let x = 32
        XCTAssertEqual(u32(b, x), 0x7ff)                 // mask
        XCTAssertEqual(u32(b, x + 4), 4096)              // blksize
        XCTAssertEqual(u32(b, x + 16), 2)                // nlink
        XCTAssertEqual(b[x + 28], 0xa4); XCTAssertEqual(b[x + 29], 0x81)  // mode 0o100644, u16
        XCTAssertEqual(u64(b, x + 32), 1234)             // ino
        XCTAssertEqual(u64(b, x + 40), 5678)             // size
        XCTAssertEqual(u64(b, x + 64), 100)              // atime
        XCTAssertEqual(u64(b, x + 96), 300)              // ctime (after btime)
        XCTAssertEqual(u64(b, x + 112), 200)             // mtime
    }

    func testDirentsAreAligned() {
        XCTAssertEqual(ReplyLayout.direntSize(nameLength: 1), 32)
        XCTAssertEqual(ReplyLayout.direntSize(nameLength: 8), 32)
        XCTAssertEqual(ReplyLayout.direntSize(nameLength: 9), 40)
        let name = Array("hello".utf8)
        let b = name.withUnsafeBytes { n in encode(32) { ReplyLayout.dirent(ino: 5, next: 77, type: 8, name: n, &$0) } }
        XCTAssertEqual(u64(b, 0), 5)
        XCTAssertEqual(u64(b, 8), 77)
        XCTAssertEqual(u32(b, 16), 5)
        XCTAssertEqual(u32(b, 20), 8)
        XCTAssertEqual(Array(b[24..<29]), name)
        XCTAssertEqual(Array(b[29..<32]), [0, 0, 0], "padding is zeroed")
    }

    func testTimeouts() {
        XCTAssertEqual(ReplyLayout.timeout(0).0, 0)
        XCTAssertEqual(ReplyLayout.timeout(-3).0, 0)
        XCTAssertEqual(ReplyLayout.timeout(.infinity).0, 0)
        XCTAssertEqual(ReplyLayout.timeout(86400).0, 86400)
        XCTAssertEqual(ReplyLayout.timeout(1e30).0, UInt64.max)
    }

    func testInitNegotiation() throws {
        let all = UInt64.max & ~InitFlag.writebackCache
        let offer = InitIn(major: 7, minor: 45, maxReadahead: 131072, flags: all | InitFlag.writebackCache)
        let a = try XCTUnwrap(InitAgreement.negotiate(offer, writeback: false))
        XCTAssertEqual(a.minor, 45)
        for f in [InitFlag.parallelDirops, InitFlag.handleKillprivV2, InitFlag.atomicOTrunc, InitFlag.doReaddirplus,
                  InitFlag.cacheSymlinks, InitFlag.maxPages, InitFlag.explicitInvalData, InitFlag.posixACL,
                  InitFlag.setxattrExt, InitFlag.initExt] {
            XCTAssertNotEqual(a.flags & f, 0, "flag \(f)")
        }
        for f in [InitFlag.readdirplusAuto, InitFlag.writebackCache, InitFlag.handleKillpriv, InitFlag.passthrough,
                  InitFlag.autoInvalData, InitFlag.spliceRead, InitFlag.posixLocks] {
            XCTAssertEqual(a.flags & f, 0, "flag \(f)")
        }
        XCTAssertEqual(a.maxWrite, 1 << 20)
        XCTAssertEqual(a.maxPages, 256)
        // readdirplus=auto: the kernel's heuristic, readdirplus still on.
        let auto = try XCTUnwrap(InitAgreement.negotiate(offer, writeback: false, readdirplusAuto: true))
        XCTAssertNotEqual(auto.flags & InitFlag.readdirplusAuto, 0)
        XCTAssertNotEqual(auto.flags & InitFlag.doReaddirplus, 0)
        let noACL = try XCTUnwrap(InitAgreement.negotiate(offer, writeback: false, posixACL: false))
        XCTAssertEqual(noACL.flags & InitFlag.posixACL, 0, "acl=off")
        let w = try XCTUnwrap(InitAgreement.negotiate(offer, writeback: true))
        XCTAssertTrue(w.writebackCache)
        XCTAssertFalse(w.killPrivilegesV2, "no daemon-side kill with the writeback cache")
        // Newer kernels speak our minor; older than 7.31 or another major is refused.
        XCTAssertEqual(InitAgreement.negotiate(InitIn(major: 7, minor: 50, maxReadahead: 0, flags: 0), writeback: false)?.minor, 45)
        XCTAssertNil(InitAgreement.negotiate(InitIn(major: 7, minor: 30, maxReadahead: 0, flags: 0), writeback: false))
        XCTAssertNil(InitAgreement.negotiate(InitIn(major: 8, minor: 0, maxReadahead: 0, flags: 0), writeback: false))
        // Without INIT_EXT nothing goes in flags2.
        let old = try XCTUnwrap(InitAgreement.negotiate(InitIn(major: 7, minor: 35, maxReadahead: 0, flags: 0xffff_ffff & ~InitFlag.initExt), writeback: false))
        XCTAssertEqual(old.flags >> 32, 0)
        XCTAssertEqual(old.flags & InitFlag.initExt, 0)
    }

    func testInitOut() throws {
        let a = try XCTUnwrap(InitAgreement.negotiate(InitIn(major: 7, minor: 45, maxReadahead: 4096, flags: UInt64.max),
                                                      writeback: false, passthrough: true))
        let b = encode(WireSize.initOut) { a.encode(&$0) }
        XCTAssertEqual([u32(b, 0), u32(b, 4), u32(b, 8)], [7, 45, 4096])
        XCTAssertEqual(u32(b, 12), UInt32(truncatingIfNeeded: a.flags))
        XCTAssertEqual(u32(b, 20), 1 << 20)               // max_write
        XCTAssertEqual(u32(b, 24), 1)                      // time_gran
        XCTAssertEqual(b[28], 0); XCTAssertEqual(b[29], 1) // max_pages 256
        XCTAssertEqual(u32(b, 32), UInt32(truncatingIfNeeded: a.flags >> 32))
        XCTAssertNotEqual(u32(b, 32) & UInt32(InitFlag.passthrough >> 32), 0)
        XCTAssertEqual(u32(b, 36), 1)                      // max_stack_depth
    }

    func testNotifications() {
        let i = encode(24) { Notification.invalInode(node: 9, offset: -1, length: 0, &$0) }
        XCTAssertEqual(u64(i, 0), 9)
        XCTAssertEqual(u64(i, 8), UInt64(bitPattern: -1))
        let e = encode(16) { Notification.invalEntry(parent: 3, nameLength: 4, &$0) }
        XCTAssertEqual(u64(e, 0), 3)
        XCTAssertEqual(u32(e, 8), 4)
    }

    /// A reply goes out as one message: header (length, -errno or 0, unique) then payload.
    func testFramingThroughAPipe() throws {
        var p: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        defer { close(p[0]); close(p[1]) }
        let payload: [UInt8] = [1, 2, 3]
        let tail: [UInt8] = [4, 5]
        payload.withUnsafeBytes { a in tail.withUnsafeBytes { b in
            XCTAssertEqual(DeviceChannel.write(p[1], unique: 77, field: 0, a, b), 0)
        } }
        XCTAssertEqual(DeviceChannel.write(p[1], unique: 78, field: -ENOENT, .init(start: nil, count: 0), .init(start: nil, count: 0)), 0)
        var got = [UInt8](repeating: 0, count: 64)
        let n = got.withUnsafeMutableBytes { read(p[0], $0.baseAddress, 64) }
        XCTAssertEqual(n, 16 + 5 + 16)
        XCTAssertEqual(u32(got, 0), 21)
        XCTAssertEqual(u32(got, 4), 0)
        XCTAssertEqual(u64(got, 8), 77)
        XCTAssertEqual(Array(got[16..<21]), [1, 2, 3, 4, 5])
        XCTAssertEqual(u32(got, 21), 16)
        XCTAssertEqual(Int32(bitPattern: u32(got, 25)), -ENOENT)
        XCTAssertEqual(u64(got, 29), 78)
    }

    func testSupplementaryGroupsParse() {
        let status = Array("Name:\tbash\nUid:\t0\t0\t0\t0\nGroups:\t4 24 27 1000 \nNSpid:\t1\n".utf8)
        XCTAssertEqual(SupplementaryGroups.parse(status[...]), [4, 24, 27, 1000])
        XCTAssertEqual(SupplementaryGroups.parse(Array("Name:\tx\nGroups:\t\n".utf8)[...]), [])
        XCTAssertFalse(SupplementaryGroups.of(getpid()).isEmpty && getgroups(0, nil) > 0)
    }
}
