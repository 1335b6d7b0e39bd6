import CAttr
import Foundation
import Glibc
import SystemPackage

/// The table's calls as system calls below a mounted directory: for a unionfs-swift mount
/// and for kernel overlayfs alike.
struct PosixHarness: EdgeCaseHarness {
    let root: String

    func abs(_ path: String) -> String { path.isEmpty ? root : root + "/" + path }
    func rc(_ r: Int32) -> Int32 { r < 0 ? Glibc.errno : 0 }

    func write(_ path: String, _ content: String) -> Int32 {
        let fd = Glibc.open(abs(path), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return Glibc.errno }
        defer { close(fd) }
        let bytes = Array(content.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? 0 : (n < 0 ? Glibc.errno : EIO)
    }

    func open(_ path: String, flags: Int32) -> Int32 {
        let fd = Glibc.open(abs(path), flags)
        guard fd >= 0 else { return Glibc.errno }
        close(fd)
        return 0
    }

    func unlink(_ path: String) -> Int32 { rc(Glibc.unlink(abs(path))) }
    func rmdir(_ path: String) -> Int32 { rc(Glibc.rmdir(abs(path))) }
    func mkdir(_ path: String) -> Int32 { rc(Glibc.mkdir(abs(path), 0o755)) }
    func rename(_ from: String, _ to: String) -> Int32 { rc(Glibc.rename(abs(from), abs(to))) }
    func link(_ from: String, _ to: String) -> Int32 { rc(Glibc.link(abs(from), abs(to))) }
    func chmod(_ path: String, _ mode: mode_t) -> Int32 { rc(Glibc.chmod(abs(path), mode)) }
    func mknodWhiteout(_ path: String) -> Int32 { rc(Glibc.mknod(abs(path), S_IFCHR | 0o644, 0)) }

    func setxattr(_ path: String, _ name: String, _ value: String) -> Int32 {
        let bytes = Array(value.utf8)
        return rc(bytes.withUnsafeBytes { lsetxattr(abs(path), name, $0.baseAddress, $0.count, 0) })
    }

    func stat(_ path: String) -> Result<stat, Errno> {
        var st = Glibc.stat()
        return lstat(abs(path), &st) == 0 ? .success(st) : .failure(Errno(rawValue: Glibc.errno))
    }

    func read(_ path: String) -> Result<String, Errno> {
        let fd = Glibc.open(abs(path), O_RDONLY)
        guard fd >= 0 else { return .failure(Errno(rawValue: Glibc.errno)) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return .failure(Errno(rawValue: Glibc.errno)) }
            if n == 0 { return .success(String(decoding: out, as: UTF8.self)) }
            out += buf[0..<n]
        }
    }

    func list(_ path: String) -> Result<[(name: String, ino: UInt64)], Errno> {
        guard let d = opendir(abs(path)) else { return .failure(Errno(rawValue: Glibc.errno)) }
        defer { closedir(d) }
        var out: [(name: String, ino: UInt64)] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
            if name != "." && name != ".." { out.append((name, UInt64(e.pointee.d_ino))) }
        }
        return .success(out)
    }

    func xattrNames(_ path: String) -> Result<[String], Errno> {
        var buf = [CChar](repeating: 0, count: 65536)
        let n = llistxattr(abs(path), &buf, buf.count)
        guard n >= 0 else { return .failure(Errno(rawValue: Glibc.errno)) }
        return .success(buf[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) })
    }

    func getxattr(_ path: String, _ name: String) -> Result<[UInt8], Errno> {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = lgetxattr(abs(path), name, &buf, buf.count)
        return n >= 0 ? .success(Array(buf[0..<n])) : .failure(Errno(rawValue: Glibc.errno))
    }
}
