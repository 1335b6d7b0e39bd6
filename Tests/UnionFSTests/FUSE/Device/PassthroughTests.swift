import Foundation
import Glibc
import UnionFS
import XCTest

/// FUSE passthrough (`passthrough=auto|on|off`): file data goes between the kernel and the
/// layer's file without the daemon. Mounted for real; skipped where the kernel cannot have it
/// (before Linux 6.9, or without FUSE_PASSTHROUGH), failed where it can and did not.
final class PassthroughTests: MountTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let v = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard v.count == 2, (v[0], v[1]) >= (6, 9) else { throw XCTSkip("passthrough needs Linux 6.9+, this is \(release)") }
        chmod(tmp, 0o755)
    }

    /// 1 MiB that differs at every 4 KiB page.
    private let content: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }

    /// The daemon's stats (`unionfs-swift stats`): requests per opcode, and the passthrough opens.
    private func stats(_ m: FuseMount) throws -> (requests: [String: Int], passthroughOpens: Int) {
        let r = try Run.program(TestEnvironment.binary, ["stats", m.mountPoint], timeout: 10)
        XCTAssertEqual(r.status, 0, r.stderr)
        var counts: [String: Int] = [:]
        var opens = -1
        for line in r.stdout.split(separator: "\n") {
            let words = line.split(separator: " ")
            if line.hasPrefix("passthrough opens:") { opens = Int(words.last ?? "") ?? -1; continue }
            if words.count == 5, let n = Int(words[1]) { counts[String(words[0])] = n }
        }
        XCTAssertGreaterThanOrEqual(opens, 0, "no passthrough line in the stats: \(r.stdout)")
        return (counts, opens)
    }

    /// Waits (at most 5 s) until the daemon has handled `count` RELEASEs.
    private func waitForReleases(_ m: FuseMount, _ count: Int) throws {
        let deadline = Date().addingTimeInterval(5)
        while try stats(m).requests["RELEASE", default: 0] < count {
            guard Date() < deadline else { return XCTFail("the daemon did not get \(count) RELEASEs in 5 s") }
            usleep(10_000)
        }
    }

    private func readAll(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) }
    }

    private func mmapRead(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return nil }
        guard let p = mmap(nil, Int(st.st_size), PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else { return nil }
        defer { munmap(p, Int(st.st_size)) }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: Int(st.st_size)))
    }

    /// A read-only stack: every file is passed through; read and mmap see the lower file, and
    /// no READ reaches the daemon.
    func testReadOnlyStackReadsAndMapsTheLowerFile() throws {
        try fx.layer("low").fileBytes("big", content)
        let m = try fuseMount(lowerdirOption(["low"]) + ",passthrough=on")
        try assertPassedThrough(m.mountPoint + "/big", daemon: m, opens: 2)
    }

    /// `path` reads and maps as `content`, and the daemon `m` saw no READ and at least `opens`
    /// passthrough opens.
    private func assertPassedThrough(_ path: String, daemon m: FuseMount, opens: Int,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(readAll(path), content, "read", file: file, line: line)
        XCTAssertEqual(mmapRead(path), content, "mmap", file: file, line: line)
        let s = try stats(m)
        XCTAssertGreaterThanOrEqual(s.passthroughOpens, opens, "\(s)", file: file, line: line)
        XCTAssertNil(s.requests["READ"], "reads reached the daemon: \(s)", file: file, line: line)
    }

    /// A writable mount: a lower file opened for write is copied up and passed through to the
    /// upper file; write, read, mmap (shared, written) all land in the upper file, the size the
    /// kernel reports follows the writes, and neither READ nor WRITE reaches the daemon.
    func testWriteReadAndMmapGoToTheUpperFile() throws {
        try fx.layer("low").file("f", "lower data")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),passthrough=on")
        let path = m.mountPoint + "/f"
        let fd = open(path, O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(content.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }, content.count)
        var st = stat()
        XCTAssertEqual(fstat(fd, &st), 0)
        XCTAssertEqual(st.st_size, off_t(content.count), "fstat after an extending passthrough write")
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_size, off_t(content.count), "stat after an extending passthrough write")
        var back = [UInt8](repeating: 0, count: content.count)
        XCTAssertEqual(back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }, content.count)
        XCTAssertEqual(back, content)
        // A shared writable mapping writes the upper file.
        if let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED {
            p.storeBytes(of: 0x5a, toByteOffset: 10, as: UInt8.self)
            XCTAssertEqual(msync(p, 4096, MS_SYNC), 0)
            munmap(p, 4096)
        } else { XCTFail("mmap: \(String(cString: strerror(errno)))") }
        close(fd)
        var expected = content
        expected[10] = 0x5a
        XCTAssertEqual(readAll(upper + "/f"), expected, "the upper file")
        XCTAssertEqual(readAll(path), expected, "read through the mount")
        XCTAssertEqual(mmapRead(path), expected, "mmap through the mount")
        XCTAssertEqual(readAll(fx.path("low") + "/f").map { String(decoding: $0, as: UTF8.self) }, "lower data",
                       "the lower file untouched")
        // A new file is passed through from its creation.
        XCTAssertTrue(FileManager.default.createFile(atPath: m.mountPoint + "/new", contents: Data(content)))
        XCTAssertEqual(readAll(upper + "/new"), content)
        let s = try stats(m)
        XCTAssertGreaterThanOrEqual(s.passthroughOpens, 4, "\(s)")
        XCTAssertNil(s.requests["READ"], "reads reached the daemon: \(s)")
        XCTAssertNil(s.requests["WRITE"], "writes reached the daemon: \(s)")
    }

    /// What a read-only descriptor opened on a lower file sees after a write open copies the
    /// file up, on a mount with `passthrough` set to `mode`; the write open must succeed.
    private func copyUpWhileOpen(_ mode: String) throws -> (oldReader: String, newReader: String, passthroughOpens: Int) {
        try fx.layer("low-\(mode)").file("f", "lower")
        let upper = try makeDir("upper-\(mode)"), work = try makeDir("work-\(mode)")
        let m = try fuseMount(lowerdirOption(["low-\(mode)"]) + ",upperdir=\(upper),workdir=\(work),passthrough=\(mode)",
                              name: "mnt-\(mode)")
        let path = m.mountPoint + "/f"
        let reader = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(reader, 0)
        var buf = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(buf.withUnsafeMutableBytes { pread(reader, $0.baseAddress, $0.count, 0) }, 5)
        let writer = open(path, O_WRONLY | O_TRUNC)
        XCTAssertGreaterThanOrEqual(writer, 0, "write open while a reader holds the lower file: \(String(cString: strerror(errno)))")
        XCTAssertEqual(write(writer, "UPPER!", 6), 6)
        close(writer)
        let n = buf.withUnsafeMutableBytes { pread(reader, $0.baseAddress, $0.count, 0) }
        let old = n >= 0 ? String(decoding: buf[0..<n], as: UTF8.self) : "error \(errno)"
        close(reader)
        try waitForReleases(m, 2)  // RELEASE is sent after close(2) returns
        // Every descriptor closed: the next open finds the file in the upper.
        let again = readAll(path).map { String(decoding: $0, as: UTF8.self) } ?? "unreadable"
        return (old, again, try stats(m).passthroughOpens)
    }

    /// Copy-up while a read-only descriptor holds the lower file: the write open succeeds, the
    /// old descriptor sees what it sees without passthrough, and once all are closed the
    /// upper file is passed through.
    func testCopyUpWhileAReaderHoldsTheLowerFile() throws {
        let on = try copyUpWhileOpen("on")
        let off = try copyUpWhileOpen("off")
        XCTAssertEqual(on.oldReader, off.oldReader, "the old reader differs with passthrough")
        XCTAssertEqual(on.newReader, "UPPER!")
        XCTAssertEqual(off.newReader, "UPPER!")
        XCTAssertEqual(off.passthroughOpens, 0)
        XCTAssertEqual(on.passthroughOpens, 1, "only the open after the copy-up is passed through")
    }

    /// `O_DIRECT` through a passthrough descriptor: the caller's own buffer goes to the layer's
    /// filesystem, so direct I/O answers as on the plain file, misaligned buffer included (the
    /// daemon's aligned copy, `DirectIOTests`, is not on this path), and the data is the file's.
    func testDirectIOGoesToTheBackingFile() throws {
        try fx.layer("low").fileBytes("big", content)
        FileManager.default.createFile(atPath: tmp + "/plain", contents: Data(content))
        let m = try fuseMount(lowerdirOption(["low"]) + ",passthrough=on")
        func direct(_ path: String) -> [String] {
            let fd = open(path, O_RDONLY | O_DIRECT)
            guard fd >= 0 else { return ["open: \(String(cString: strerror(errno)))"] }
            defer { close(fd) }
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4096)
            defer { buf.deallocate() }
            var out: [String] = []
            for (bufOffset, off, len) in [(0, 0, 4096), (0, 8192, 32768), (1, 0, 4096), (0, 100, 4096)] {
                let n = pread(fd, buf.baseAddress! + bufOffset, len, off_t(off))
                let same = n > 0 && Array(UnsafeRawBufferPointer(rebasing: buf[bufOffset..<(bufOffset + n)])) == Array(content[off..<(off + n)])
                out.append("read \(len)@\(off) buffer+\(bufOffset) = \(n < 0 ? String(cString: strerror(errno)) : "\(n) \(same)")")
            }
            return out
        }
        let plain = direct(tmp + "/plain"), mine = direct(m.mountPoint + "/big")
        XCTAssertEqual(mine, plain)
        XCTAssertEqual(mine.first, "read 4096@0 buffer+0 = 4096 true")
        XCTAssertNil(try stats(m).requests["READ"])
    }

    /// A file whose pages were cached, then written by passthrough, then opened cached again
    /// (setuid makes it ineligible) reads what was written, not the old pages: the passthrough
    /// open, answered without FOPEN_KEEP_CACHE (which the kernel refuses with passthrough),
    /// drops the inode's pages, and passthrough I/O never fills them, so no cached open can
    /// find pages older than a passthrough write.
    func testCachedOpenAfterPassthroughWritesSeesThem() throws {
        try fx.layer("low").file("f", "lower-lower")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),passthrough=on")
        let path = m.mountPoint + "/f"
        let reader = open(path, O_RDONLY)  // lower, cached: its pages land in the page cache
        var buf = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(buf.withUnsafeMutableBytes { pread(reader, $0.baseAddress, $0.count, 0) }, 11)
        let writer = open(path, O_WRONLY)  // cached too (the reader is), copies up
        XCTAssertEqual(pwrite(writer, "AAAAA", 5, 0), 5)
        close(writer)
        close(reader)
        // The kernel sends RELEASE after close(2) returns: until the daemon has handled both,
        // the next open would still find a cached open and not be passed through.
        try waitForReleases(m, 2)
        let pt = open(path, O_WRONLY)  // now in the upper with nothing open: passed through
        XCTAssertEqual(pwrite(pt, "BBBBB", 5, 0), 5)
        close(pt)
        XCTAssertEqual(try stats(m).passthroughOpens, 1)
        XCTAssertEqual(chmod(path, 0o4644), 0)  // setuid: the next open is cached
        XCTAssertEqual(readAll(path).map { String(decoding: $0, as: UTF8.self) }, "BBBBB-lower")
        XCTAssertEqual(try stats(m).passthroughOpens, 1)
    }

    /// Opens racing on one inode in both modes: read-only opens of a lower file (cached) from
    /// several threads while others open it for write (the first copies it up; those after
    /// may be passed through once no cached open is left). The kernel answers a mode that
    /// conflicts with the inode's current one with EIO, so every open must succeed.
    func testRacingOpensNeverFail() throws {
        try fx.layer("low").file("f", "0123456789")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),passthrough=on")
        let path = m.mountPoint + "/f"
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<300 {
                let flags = (t + i) % 3 == 0 ? O_RDWR : O_RDONLY
                let fd = open(path, flags)
                if fd < 0 { failures.add("open \(flags): \(String(cString: strerror(errno)))"); continue }
                var b = [UInt8](repeating: 0, count: 10)
                if b.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 10, 0) }) != 10 { failures.add("read: \(errno)") }
                if flags == O_RDWR && pwrite(fd, "0", 1, 0) != 1 { failures.add("write: \(errno)") }
                close(fd)
            }
        }
        XCTAssertEqual(failures.all, [])
        XCTAssertEqual(readAll(path).map { String(decoding: $0, as: UTF8.self) }, "0123456789")
        XCTAssertGreaterThan(try stats(m).passthroughOpens, 0, "never passed through after the copy-up")
    }

    /// passthrough=off: today's behaviour, reads come to the daemon.
    func testOffSendsReadsToTheDaemon() throws {
        try fx.layer("low").fileBytes("big", content)
        let m = try fuseMount(lowerdirOption(["low"]) + ",passthrough=off")
        XCTAssertEqual(readAll(m.mountPoint + "/big"), content)
        let s = try stats(m)
        XCTAssertEqual(s.passthroughOpens, 0)
        XCTAssertGreaterThan(s.requests["READ"] ?? 0, 0, "\(s)")
    }

    /// Kernel overlayfs stacks on a passthrough mount (max_stack_depth 1): its reads see our
    /// files, and are passed through below it.
    func testKernelOverlayStacksOnThePassthroughMount() throws {
        try fx.layer("low").fileBytes("big", content)
        let m = try fuseMount(lowerdirOption(["low"]) + ",passthrough=on")
        // Overlayfs wants two lowers without an upper; and one with an upper on the disk.
        let k = try kernelMount(lowers: [m.mountPoint, try makeDir("empty")])
        let upper = try makeDir("kupper"), work = try makeDir("kwork")
        let kw = try kernelMount(lowers: [m.mountPoint], upper: upper, work: work, name: "kernel-rw")
        XCTAssertEqual(readAll(kw.mountPoint + "/big"), content)
        let fd = open(kw.mountPoint + "/big", O_WRONLY | O_APPEND)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(write(fd, "!", 1), 1)
        close(fd)
        XCTAssertEqual(readAll(upper + "/big"), content + [UInt8(ascii: "!")], "kernel overlayfs copied up from our mount")
        try assertPassedThrough(k.mountPoint + "/big", daemon: m, opens: 1)
    }

    /// A caller without CAP_SYS_ADMIN writing to a setuid file clears setuid, as without
    /// passthrough (the kernel's passthrough write runs as the daemon, which keeps the bit, so
    /// such files are not passed through).
    func testUnprivilegedPassthroughWriteClearsSetuid() throws {
        try fx.layer("low").file("seed", "s")
        let upper = try makeDir("upper"), work = try makeDir("work")
        let m = try fuseMount(lowerdirOption(["low"]) + ",upperdir=\(upper),workdir=\(work),passthrough=on,allow_other")
        let path = m.mountPoint + "/suid"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        XCTAssertEqual(chmod(path, 0o4777), 0)
        let r = try Run.program("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                     "/bin/sh", "-c", "printf abc >> '\(path)'"], timeout: 10)
        XCTAssertEqual(r.status, 0, r.stderr)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_size, 4)
        XCTAssertEqual(st.st_mode & 0o7777, 0o777, "setuid kept after an unprivileged write")
        XCTAssertEqual(stat(upper + "/suid", &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o777, "setuid kept in the upper")
    }

    /// passthrough=on where it cannot be honoured fails with the reason: with the writeback
    /// cache, and for a caller without CAP_SYS_ADMIN.
    func testOnThatCannotBeHonouredFails() throws {
        try fx.layer("low").file("f", "x")
        let upper = try makeDir("upper"), work = try makeDir("work"), mnt = try makeDir("mnt")
        let r = try Run.program(TestEnvironment.binary, ["-f", "-o", lowerdirOption(["low"])
            + ",upperdir=\(upper),workdir=\(work),writeback=1,passthrough=on", mnt], timeout: 20)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue((r.stdout + r.stderr).contains("passthrough=on cannot be honoured"), r.stdout + r.stderr)
        XCTAssertTrue((r.stdout + r.stderr).contains("writeback"), r.stdout + r.stderr)
        XCTAssertFalse(MountTable.isMounted(mnt))
        chmod(mnt, 0o777)
        let n = try Run.program("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                     TestEnvironment.binary, "-f", "-o", lowerdirOption(["low"]) + ",passthrough=on", mnt],
                                timeout: 20)
        XCTAssertNotEqual(n.status, 0)
        XCTAssertTrue((n.stdout + n.stderr).contains("CAP_SYS_ADMIN"), n.stdout + n.stderr)
        if MountTable.isMounted(mnt) { MountTable.forceUnmount(mnt) }
    }
}

/// Failures collected from several threads.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return Array(list.prefix(10)) }
}
