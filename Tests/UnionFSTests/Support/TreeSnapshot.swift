import CAttr
import Foundation
import Glibc
import XCTest

/// What a tree walk records for one path.
struct TreeEntry: Equatable {
    var type: Character      // f d l c b p s; "!" listed by readdir but lstat failed
    var size: Int64
    var mode: UInt32         // permission bits incl. suid/sgid/sticky
    var uid: UInt32
    var gid: UInt32
    var target: String?      // symlink target
    var digest: UInt64?      // FNV-1a 64 of a regular file's content
    var xattrs: [String: [UInt8]]  // user.* only

    func describe(ignoringDirectorySize: Bool = false) -> String {
        var s = "\(type) mode=\(String(mode, radix: 8)) uid=\(uid) gid=\(gid)"
        if !(type == "d" && ignoringDirectorySize) { s += " size=\(size)" }
        if let target { s += " -> \(target)" }
        if let digest { s += " digest=\(String(digest, radix: 16))" }
        if !xattrs.isEmpty {
            s += " xattrs={" + xattrs.keys.sorted().map { "\($0)=\(String(decoding: xattrs[$0]!, as: UTF8.self))" }
                .joined(separator: ",") + "}"
        }
        return s
    }
}

/// One directory entry as readdir reported it, with what lstat said about the same path.
struct InodePair {
    var path: String
    var dIno: UInt64
    var stIno: UInt64
}

struct WalkError: Error, CustomStringConvertible { let description: String }

/// A whole tree: relative path ("" is the root, "a/b" below it) to what it holds.
struct TreeSnapshot {
    var entries: [String: TreeEntry] = [:]
    /// readdir's d_ino next to lstat's st_ino for every entry met.
    var inodes: [InodePair] = []

    /// Walks `root` without following symlinks. Errors name the path.
    static func walk(_ root: String) throws -> TreeSnapshot {
        var snap = TreeSnapshot()
        snap.entries[""] = try record(root)
        try walkDir(root, rel: "", into: &snap)
        return snap
    }

    private static func walkDir(_ abs: String, rel: String, into snap: inout TreeSnapshot) throws {
        guard let d = opendir(abs) else { throw WalkError(description: "opendir \(abs): \(String(cString: strerror(errno)))") }
        var children: [(String, UInt64)] = []
        errno = 0
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            children.append((name, UInt64(e.pointee.d_ino)))
        }
        let readErr = errno
        closedir(d)
        if readErr != 0 { throw WalkError(description: "readdir \(abs): \(String(cString: strerror(readErr)))") }
        for (name, dIno) in children {
            let childAbs = abs + "/" + name
            let childRel = rel.isEmpty ? name : rel + "/" + name
            var st = stat()
            guard lstat(childAbs, &st) == 0 else {
                // Listed by readdir but not found by lookup: record it so the diff shows it.
                snap.entries[childRel] = TreeEntry(type: "!", size: 0, mode: 0, uid: 0, gid: 0,
                                                   target: "listed by readdir, lstat: \(String(cString: strerror(errno)))",
                                                   digest: nil, xattrs: [:])
                continue
            }
            snap.inodes.append(InodePair(path: childRel, dIno: dIno, stIno: UInt64(st.st_ino)))
            let entry = try record(childAbs)
            snap.entries[childRel] = entry
            if entry.type == "d" { try walkDir(childAbs, rel: childRel, into: &snap) }
        }
    }

    static func record(_ path: String) throws -> TreeEntry {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw WalkError(description: "lstat \(path): \(String(cString: strerror(errno)))") }
        let t: Character
        switch st.st_mode & S_IFMT {
        case S_IFREG: t = "f"
        case S_IFDIR: t = "d"
        case S_IFLNK: t = "l"
        case S_IFCHR: t = "c"
        case S_IFBLK: t = "b"
        case S_IFIFO: t = "p"
        default: t = "s"
        }
        var e = TreeEntry(type: t, size: Int64(st.st_size), mode: UInt32(st.st_mode & 0o7777),
                          uid: st.st_uid, gid: st.st_gid, target: nil, digest: nil, xattrs: [:])
        if t == "l" {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buf, buf.count - 1)
            guard n >= 0 else { throw WalkError(description: "readlink \(path): \(String(cString: strerror(errno)))") }
            e.target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        if t == "f" { e.digest = try digest(path) }
        e.xattrs = try userXattrs(path)
        return e
    }

    static func digest(_ path: String) throws -> UInt64 {
        let fd = open(path, O_RDONLY | O_NOFOLLOW)
        guard fd >= 0 else { throw WalkError(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var h: UInt64 = 0xcbf29ce484222325
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw WalkError(description: "read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return h }
            for b in buf[0..<n] { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        }
    }

    /// Every xattr name of `path` (not following symlinks).
    static func xattrNames(_ path: String) throws -> [String] {
        let size = llistxattr(path, nil, 0)
        if size < 0 {
            if errno == ENOTSUP { return [] }
            throw WalkError(description: "llistxattr \(path): \(String(cString: strerror(errno)))")
        }
        if size == 0 { return [] }
        var buf = [CChar](repeating: 0, count: size + 256)
        let n = llistxattr(path, &buf, buf.count)
        guard n >= 0 else { throw WalkError(description: "llistxattr \(path): \(String(cString: strerror(errno)))") }
        return buf[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    static func xattrValue(_ path: String, _ name: String) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = lgetxattr(path, name, &buf, buf.count)
        guard n >= 0 else { throw WalkError(description: "lgetxattr \(path) \(name): \(String(cString: strerror(errno)))") }
        return Array(buf[0..<n])
    }

    static func userXattrs(_ path: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in try xattrNames(path) where name.hasPrefix("user.") {
            out[name] = try xattrValue(path, name)
        }
        return out
    }

    /// Lines describing every difference (empty when equal), at most `limit` of them.
    func differences(from other: TreeSnapshot, ignoringDirectorySize: Bool = false, limit: Int = 60) -> [String] {
        var lines: [String] = []
        let keys = Set(entries.keys).union(other.entries.keys).sorted()
        for k in keys {
            let shown = "/" + k
            switch (entries[k], other.entries[k]) {
            case (let a?, nil): lines.append("only in actual:   \(shown)  \(a.describe())")
            case (nil, let b?): lines.append("only in expected: \(shown)  \(b.describe())")
            case (var a?, var b?):
                if ignoringDirectorySize && a.type == "d" && b.type == "d" { a.size = 0; b.size = 0 }
                if a != b {
                    lines.append("differs: \(shown)\n    actual:   \(a.describe(ignoringDirectorySize: ignoringDirectorySize))\n    expected: \(b.describe(ignoringDirectorySize: ignoringDirectorySize))")
                }
            default: break
            }
            if lines.count >= limit { lines.append("... (more differences not shown)"); break }
        }
        return lines
    }

    /// A sorted one-line-per-path listing (for messages).
    var listing: String {
        entries.keys.sorted().map { "/\($0)  \(entries[$0]!.describe())" }.joined(separator: "\n")
    }
}

/// Fails with a readable diff when the two trees differ.
func XCTAssertTreesEqual(_ actual: TreeSnapshot, _ expected: TreeSnapshot, ignoringDirectorySize: Bool = false,
                         _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    let diff = actual.differences(from: expected, ignoringDirectorySize: ignoringDirectorySize)
    if !diff.isEmpty {
        XCTFail("trees differ (\(actual.entries.count) vs \(expected.entries.count) paths) \(message):\n" + diff.joined(separator: "\n"),
                file: file, line: line)
    }
}
