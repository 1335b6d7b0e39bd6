import CLinux
import Foundation
import Glibc
import XCTest

/// Issue 13: model-checked random I/O (fsx-like). Thousands of random writes, truncates,
/// fallocate (allocate, keep-size, punch hole), mmap reads and writes, and reads, on a file that
/// starts in a lower layer (the first write opens it for writing: copy-up) and on a new file;
/// after every operation the size and the whole content are compared with an in-memory model,
/// also through a descriptor opened read-only before the copy-up. `UNIONFS_FSX_SEED` replays a
/// run (the seed is printed with any failure), `UNIONFS_FSX_OPS` sets the count per file.
final class FsxTests: WriteTestCase {
    private let maxSize = 256 << 10

    func testRandomIOAgainstModel() throws {
        let seed = SeededRandom.seed(from: "UNIONFS_FSX_SEED")
        let count = Int(ProcessInfo.processInfo.environment["UNIONFS_FSX_OPS"] ?? "") ?? 1500
        var rng = SeededRandom(seed: seed)
        let lowData = (0..<(100 << 10)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try fx.layer("low").fileBytes("lowfile", lowData)
        try mountWritable(["low"])
        try run(path: m("lowfile"), model: lowData, ops: count, seed: seed)
        try run(path: m("newfile"), model: nil, ops: count, seed: seed &+ 1)
        try finishAndCompareWithKernel()
    }

    /// Runs `ops` random operations on `path`; `model` is its content (nil: create it).
    private func run(path: String, model start: [UInt8]?, ops: Int, seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var model = start ?? []
        var log: [String] = []
        // Opened read-only before any write: for a lower file it must follow the copy-up.
        if start == nil { close(open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)) }
        let early = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(early, 0)
        defer { close(early) }
        var fd: Int32 = -1
        defer { if fd >= 0 { close(fd) } }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: maxSize, alignment: 4096)
        defer { buf.deallocate() }

        func fail(_ what: String) {
            XCTFail("\(path): \(what) after \(log.count) ops (UNIONFS_FSX_SEED=\(seed)); last ops:\n"
                    + log.suffix(12).joined(separator: "\n"))
        }
        func writable() -> Int32 {
            if fd < 0 { fd = open(path, O_RDWR) }
            return fd
        }
        /// The whole content and size through `d` equal the model.
        func check(_ d: Int32, _ via: String) -> Bool {
            var st = stat()
            guard fstat(d, &st) == 0 else { fail("fstat \(via): \(String(cString: strerror(errno)))"); return false }
            guard Int(st.st_size) == model.count else { fail("size \(st.st_size) via \(via), model \(model.count)"); return false }
            let n = pread(d, buf.baseAddress, maxSize, 0)
            guard n == model.count else { fail("read \(n) bytes via \(via), model \(model.count)"); return false }
            if n > 0 && memcmp(buf.baseAddress!, model, n) != 0 {
                let at = (0..<n).first { buf[$0] != model[$0] } ?? -1
                fail("content differs via \(via) at byte \(at)")
                return false
            }
            return true
        }

        for _ in 0..<ops {
            let size = model.count
            switch rng.below(10) {
            case 0, 1, 2:  // write
                let off = rng.below(maxSize - 1), len = 1 + rng.below(min(64 << 10, maxSize - off))
                for i in 0..<len { buf[i] = UInt8(truncatingIfNeeded: rng.next()) }
                log.append("write \(len)@\(off)")
                guard pwrite(writable(), buf.baseAddress, len, off_t(off)) == len else { fail("write: \(String(cString: strerror(errno)))"); return }
                if off + len > model.count { model += [UInt8](repeating: 0, count: off + len - model.count) }
                for i in 0..<len { model[off + i] = buf[i] }
            case 3:  // truncate
                let to = rng.chance(0.2) ? 0 : rng.below(maxSize)
                log.append("truncate \(to)")
                guard ftruncate(writable(), off_t(to)) == 0 else { fail("ftruncate: \(String(cString: strerror(errno)))"); return }
                if to < model.count { model.removeLast(model.count - to) } else { model += [UInt8](repeating: 0, count: to - model.count) }
            case 4:  // fallocate: allocate, keep size, or punch a hole
                let off = rng.below(maxSize - 1), len = 1 + rng.below(min(64 << 10, maxSize - off))
                let kind = rng.below(3)
                let punchHole: Int32 = 0x02  // FALLOC_FL_PUNCH_HOLE
                let mode: Int32 = [0, unionfs_FALLOC_FL_KEEP_SIZE, punchHole | unionfs_FALLOC_FL_KEEP_SIZE][kind]
                log.append("fallocate mode \(mode) \(len)@\(off)")
                if CLinux.fallocate(writable(), mode, off_t(off), off_t(len)) != 0 {
                    if errno == EOPNOTSUPP { continue }
                    fail("fallocate: \(String(cString: strerror(errno)))"); return
                }
                if kind == 0 && off + len > model.count { model += [UInt8](repeating: 0, count: off + len - model.count) }
                if kind == 2 && off < model.count { for i in off..<min(off + len, model.count) { model[i] = 0 } }
            case 5:  // mmap write within the file
                guard size > 0 else { continue }
                let off = rng.below(size), len = 1 + rng.below(min(32 << 10, size - off))
                log.append("mmap write \(len)@\(off)")
                guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, writable(), 0), p != MAP_FAILED else {
                    fail("mmap rw: \(String(cString: strerror(errno)))"); return
                }
                for i in 0..<len {
                    let b = UInt8(truncatingIfNeeded: rng.next())
                    p.storeBytes(of: b, toByteOffset: off + i, as: UInt8.self)
                    model[off + i] = b
                }
                XCTAssertEqual(msync(p, size, MS_SYNC), 0)
                munmap(p, size)
            case 6:  // mmap read within the file
                guard size > 0 else { continue }
                let d = rng.chance(0.5) ? early : writable()
                log.append("mmap read via \(d == early ? "early" : "rw")")
                guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, d, 0), p != MAP_FAILED else {
                    fail("mmap ro: \(String(cString: strerror(errno)))"); return
                }
                let same = memcmp(p, model, size) == 0
                munmap(p, size)
                if !same { fail("mmap read differs"); return }
            default:  // read a random range through either descriptor
                let d = rng.chance(0.5) ? early : writable()
                let off = rng.below(maxSize), len = 1 + rng.below(64 << 10)
                log.append("read \(len)@\(off) via \(d == early ? "early" : "rw")")
                let n = pread(d, buf.baseAddress, len, off_t(off))
                let want = max(0, min(len, model.count - off))
                guard n == want else { fail("read \(n), model \(want)"); return }
                if n > 0 && memcmp(buf.baseAddress!, Array(model[off..<(off + n)]), n) != 0 { fail("read differs"); return }
            }
            guard check(fd >= 0 ? fd : early, "rw") else { return }
            if rng.chance(0.1) {
                // From the daemon, not the page cache the writes filled.
                _ = posix_fadvise(early, 0, 0, POSIX_FADV_DONTNEED)
                guard check(early, "early reader") else { return }
            }
        }
        let upper = (try? Data(contentsOf: URL(fileURLWithPath: u(URL(fileURLWithPath: path).lastPathComponent)))) ?? Data()
        XCTAssertTrue(upper == Data(model), "\(path): upper file differs from the model (UNIONFS_FSX_SEED=\(seed))")
    }
}
