import CAttr
import CLinux
import Foundation
import Glibc
import UnionFS
import XCTest

/// One process of `StressTests`: random operations on its private directory `p<i>` (whose
/// names it models: any ENOENT for a name it made and did not remove is a failure) and on the
/// shared directories `s0`...`s3` (where other processes race with it, so only EIO, ENXIO,
/// ESTALE and ENOTCONN are failures there). Hard links go across private and shared
/// directories, so the other names of its files are renamed and removed by other processes.
final class StressWorker {
    private let root: String
    private let index: Int
    private let deadline: Date
    private var rng: SeededRandom
    /// Private names (relative to `root`) that exist: type f d l p c.
    private var model: [String: Character] = [:]
    private var serial = 0
    var ops: [String: Int] = [:]
    var errors: [String: Int] = [:]
    var fatal: [String] = []
    private let sharedDirs = 4
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4096)

    init(root: String, index: Int, deadline: Date, seed: UInt64, lowerFiles: [String]) {
        self.root = root
        self.index = index
        self.deadline = deadline
        rng = SeededRandom(seed: seed &+ UInt64(index) &* 0x1000_0001)
        model["p\(index)"] = "d"
        for f in lowerFiles { model[f] = "f" }
    }

    deinit { buffer.deallocate() }

    func run() {
        while Date() < deadline && fatal.count < 20 {
            for _ in 0..<50 { step() }
        }
        verify()
    }

    // MARK: - Bookkeeping

    private func abs(_ rel: String) -> String { root + "/" + rel }

    /// Counts `op`; `rc` is 0 or an errno. `privateName`: the op was on a modelled name.
    private func record(_ op: String, _ rc: Int32, privateName: String? = nil) {
        ops[op, default: 0] += 1
        guard rc != 0 else { return }
        errors[ErrnoName.of(rc), default: 0] += 1
        if [EIO, ENXIO, ESTALE, ENOTCONN].contains(rc) || (rc == ENOENT && privateName != nil) {
            fatal.append("\(op) \(privateName ?? "(shared)"): \(ErrnoName.of(rc))")
        }
    }

    private func rc(_ r: Int32) -> Int32 { r < 0 ? errno : 0 }
    private func rc(_ r: Int) -> Int32 { r < 0 ? errno : 0 }

    private func pick(_ type: Character) -> String? {
        let names = model.filter { $0.value == type }.map(\.key).sorted()
        return names.isEmpty ? nil : names[rng.below(names.count)]
    }

    /// A fresh private name in a random private directory.
    private func freshPrivate(_ prefix: String) -> String {
        serial += 1
        return (pick("d") ?? "p\(index)") + "/\(prefix)\(serial)"
    }

    private func freshShared(_ prefix: String) -> String {
        serial += 1
        return sharedDir() + "/\(prefix)\(index)_\(serial)"
    }

    private func sharedDir() -> String {
        var d = "s\(rng.below(sharedDirs))"
        // Sometimes a subdirectory another process may be renaming or removing.
        if rng.chance(0.3), let sub = sharedEntries(d).filter({ $0.1 == DT_DIR }).randomElement(using: &rng) {
            d += "/" + sub.0
        }
        return d
    }

    private func sharedEntries(_ rel: String) -> [(String, UInt8)] {
        guard let dir = opendir(abs(rel)) else { return [] }
        defer { closedir(dir) }
        var out: [(String, UInt8)] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { out.append((name, e.pointee.d_type)) }
        }
        return out
    }

    private func fill(_ n: Int) {
        let b = UInt8(truncatingIfNeeded: rng.next())
        for i in 0..<n { buffer[i] = b &+ UInt8(truncatingIfNeeded: i) }
    }

    private func descendants(of dir: String) -> [String] { model.keys.filter { $0.hasPrefix(dir + "/") } }

    // MARK: - Operations

    private func step() {
        switch rng.below(24) {
        case 0, 1: createFile()
        case 2: writeFile()
        case 3: readFile()
        case 4: truncateFile()
        case 5: directIO()
        case 6: renamePrivate()
        case 7: unlinkPrivate()
        case 8: mkdirPrivate()
        case 9: rmdirPrivate()
        case 10: symlinkPrivate()
        case 11: specialFile()
        case 12: xattrs()
        case 13, 14: linkAcross()
        case 15: unlinkShared()
        case 16, 17: renameShared()
        case 18: mkdirShared()
        case 19: rmdirShared()
        case 20: writeShared()
        case 21: statAll()
        case 22: renameDirPrivate()
        default: createShared()
        }
    }

    private func createFile() {
        let name = freshPrivate("f")
        let fd = open(abs(name), O_WRONLY | O_CREAT | O_EXCL, 0o644)
        record("create", rc(fd), privateName: name)
        guard fd >= 0 else { return }
        let n = rng.below(9000)
        fill(n)
        record("write", rc(write(fd, buffer.baseAddress, n)), privateName: name)
        close(fd)
        model[name] = "f"
    }

    private func writeFile() {
        guard let name = pick("f") else { return }
        let fd = open(abs(name), rng.chance(0.5) ? O_WRONLY | O_APPEND : O_RDWR)
        record("open-write", rc(fd), privateName: name)
        guard fd >= 0 else { return }
        let n = rng.below(5000)
        fill(n)
        record("write", rc(pwrite(fd, buffer.baseAddress, n, off_t(rng.below(20000)))), privateName: name)
        if rng.chance(0.2) { record("ftruncate", rc(ftruncate(fd, off_t(rng.below(30000)))), privateName: name) }
        if rng.chance(0.1) { record("fsync", rc(fsync(fd)), privateName: name) }
        close(fd)
    }

    private func readFile() {
        guard let name = pick("f") else { return }
        let fd = open(abs(name), O_RDONLY)
        record("open-read", rc(fd), privateName: name)
        guard fd >= 0 else { return }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n <= 0 { if n < 0 { record("read", errno, privateName: name) }; break }
        }
        var st = stat()
        record("fstat", rc(fstat(fd, &st)), privateName: name)
        close(fd)
    }

    private func truncateFile() {
        guard let name = pick("f") else { return }
        record("truncate", rc(truncate(abs(name), off_t(rng.below(40000)))), privateName: name)
    }

    /// Aligned O_DIRECT write and read back; both must succeed and agree.
    private func directIO() {
        guard let name = pick("f") else { return }
        let fd = open(abs(name), O_RDWR | O_DIRECT)
        record("open-direct", rc(fd), privateName: name)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let off = off_t(rng.below(8) * 4096), n = 4096 * (1 + rng.below(4))
        fill(n)
        let w = pwrite(fd, buffer.baseAddress, n, off)
        record("direct-write", rc(w), privateName: name)
        if w < 0 && errno == EINVAL { fatal.append("direct-write \(name): EINVAL for an aligned write") }
        let back = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 4096)
        defer { back.deallocate() }
        let r = pread(fd, back.baseAddress, n, off)
        record("direct-read", rc(r), privateName: name)
        if w == n && r == n && memcmp(back.baseAddress!, buffer.baseAddress!, n) != 0 {
            fatal.append("direct-read \(name): data differs from what was written")
        }
    }

    private func renamePrivate() {
        guard let from = pick("f") ?? pick("l") ?? pick("p") else { return }
        let to = freshPrivate("r")
        let r = rc(rename(abs(from), abs(to)))
        record("rename", r, privateName: from)
        if r == 0 { model[to] = model.removeValue(forKey: from) }
    }

    private func renameDirPrivate() {
        guard let from = pick("d"), from != "p\(index)" else { return }
        serial += 1
        let to = "p\(index)/rd\(serial)"
        if to.hasPrefix(from + "/") { return }
        let r = rc(rename(abs(from), abs(to)))
        record("rename-dir", r, privateName: from)
        guard r == 0 else { return }
        for d in descendants(of: from) { model[to + d.dropFirst(from.count)] = model.removeValue(forKey: d) }
        model[to] = model.removeValue(forKey: from)
    }

    private func unlinkPrivate() {
        guard let name = pick("f") ?? pick("l") else { return }
        let r = rc(unlink(abs(name)))
        record("unlink", r, privateName: name)
        if r == 0 { model[name] = nil }
    }

    private func mkdirPrivate() {
        guard model.values.filter({ $0 == "d" }).count < 12 else { return }
        let name = freshPrivate("d")
        let r = rc(mkdir(abs(name), 0o755))
        record("mkdir", r, privateName: name)
        if r == 0 { model[name] = "d" }
    }

    private func rmdirPrivate() {
        let empty = model.filter { $0.value == "d" && $0.key != "p\(index)" && descendants(of: $0.key).isEmpty }.map(\.key).sorted()
        guard !empty.isEmpty else { return }
        let name = empty[rng.below(empty.count)]
        let r = rc(rmdir(abs(name)))
        record("rmdir", r, privateName: name)
        if r == 0 { model[name] = nil }
    }

    private func symlinkPrivate() {
        let name = freshPrivate("l")
        let r = rc(symlink(pick("f") ?? "nowhere", abs(name)))
        record("symlink", r, privateName: name)
        if r == 0 { model[name] = "l" }
    }

    private func specialFile() {
        let name = freshPrivate("n")
        let fifo = rng.chance(0.5)
        let r = rc(fifo ? mkfifo(abs(name), 0o600) : mknod(abs(name), S_IFCHR | 0o600, unionfs_makedev(1, 3)))
        record(fifo ? "mkfifo" : "mknod", r, privateName: name)
        if r == 0 { model[name] = fifo ? "p" : "c" }
    }

    private func xattrs() {
        guard let name = pick("f") else { return }
        let value = "v\(rng.below(1000))"
        record("setxattr", rc(setxattr(abs(name), "user.stress", value, value.utf8.count, 0)), privateName: name)
        var buf = [UInt8](repeating: 0, count: 64)
        let n = getxattr(abs(name), "user.stress", &buf, 64)
        record("getxattr", rc(n), privateName: name)
        if n >= 0 && String(decoding: buf.prefix(n), as: UTF8.self) != value {
            fatal.append("getxattr \(name): read back a different value")
        }
    }

    /// A hard link of a private file under another private name or in a shared directory.
    private func linkAcross() {
        guard let from = pick("f") else { return }
        if rng.chance(0.5) {
            let to = freshPrivate("h")
            let r = rc(link(abs(from), abs(to)))
            record("link", r, privateName: from)
            if r == 0 { model[to] = "f" }
        } else {
            let r = rc(link(abs(from), abs(freshShared("h"))))
            // The target's directory may be a shared subdirectory being moved: ENOENT is fine
            // there, as long as the private source is still there.
            var st = stat()
            record("link-shared", r == ENOENT && lstat(abs(from), &st) == 0 ? 0 : r, privateName: r == ENOENT ? from : nil)
        }
    }

    private func unlinkShared() {
        let d = sharedDir()
        guard let e = sharedEntries(d).filter({ $0.1 != DT_DIR }).randomElement(using: &rng) else { return }
        record("unlink-shared", rc(unlink(abs(d + "/" + e.0))))
    }

    private func renameShared() {
        let d = sharedDir()
        guard let e = sharedEntries(d).randomElement(using: &rng) else { return }
        record("rename-shared", rc(rename(abs(d + "/" + e.0), abs(freshShared("m")))))
    }

    private func mkdirShared() {
        record("mkdir-shared", rc(mkdir(abs(freshShared("sd")), 0o755)))
    }

    private func rmdirShared() {
        let d = sharedDir()
        guard let e = sharedEntries(d).filter({ $0.1 == DT_DIR }).randomElement(using: &rng) else { return }
        record("rmdir-shared", rc(rmdir(abs(d + "/" + e.0))))
    }

    private func createShared() {
        let fd = open(abs(freshShared("c")), O_WRONLY | O_CREAT | O_EXCL, 0o644)
        record("create-shared", rc(fd))
        if fd >= 0 { _ = write(fd, "shared", 6); close(fd) }
    }

    private func writeShared() {
        let d = sharedDir()
        guard let e = sharedEntries(d).filter({ $0.1 == DT_REG }).randomElement(using: &rng) else { return }
        let p = abs(d + "/" + e.0)
        if rng.chance(0.5) {
            record("truncate-shared", rc(truncate(p, off_t(rng.below(5000)))))
        } else {
            let fd = open(p, O_WRONLY | O_APPEND)
            record("open-shared", rc(fd))
            if fd >= 0 { fill(100); _ = write(fd, buffer.baseAddress, 100); close(fd) }
        }
    }

    private func statAll() {
        let d = sharedDir()
        for e in sharedEntries(d) {
            var st = stat()
            record("lstat-shared", rc(lstat(abs(d + "/" + e.0), &st)))
        }
        guard let name = model.keys.sorted().randomElement(using: &rng) else { return }
        var st = stat()
        record("lstat", rc(lstat(abs(name), &st)), privateName: name)
    }

    // MARK: - Final check

    /// Every modelled name is there with its type, and nothing else is in the private tree.
    private func verify() {
        for (name, type) in model.sorted(by: { $0.key < $1.key }) {
            let t: Character
            do { t = try TreeSnapshot.record(abs(name)).type } catch {
                fatal.append("final \(error)"); continue
            }
            if t != type { fatal.append("final \(name): type \(t), expected \(type)") }
        }
        var listed: Set<String> = []
        func walk(_ rel: String) {
            listed.insert(rel)
            for (name, type) in sharedEntries(rel) {
                if type == DT_DIR { walk(rel + "/" + name) } else { listed.insert(rel + "/" + name) }
            }
        }
        walk("p\(index)")
        let expected = Set(model.keys)
        for extra in listed.subtracting(expected).sorted().prefix(5) { fatal.append("final: unexpected \(extra)") }
        for missing in expected.subtracting(listed).sorted().prefix(5) { fatal.append("final: not listed \(missing)") }
    }
}

/// The entry point of a stress process: `StressTests` runs this test binary again with
/// `UNIONFS_STRESS_WORKER=root|index|deadline|seed|result|lowerfiles` (lower files comma
/// separated); it writes its counts as JSON to `result`. Skipped otherwise.
final class StressWorkerEntry: XCTestCase {
    func testWorker() throws {
        guard let spec = ProcessInfo.processInfo.environment["UNIONFS_STRESS_WORKER"] else {
            throw XCTSkip("only run as a process of StressTests")
        }
        let f = spec.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 6, let index = Int(f[1]), let end = Double(f[2]), let seed = UInt64(f[3]) else {
            XCTFail("bad UNIONFS_STRESS_WORKER: \(spec)"); return
        }
        let w = StressWorker(root: f[0], index: index, deadline: Date(timeIntervalSince1970: end), seed: seed,
                             lowerFiles: f[5].split(separator: ",").map(String.init))
        w.run()
        let json: [String: Any] = ["ops": w.ops, "errors": w.errors, "fatal": w.fatal]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: f[4]))
    }
}
