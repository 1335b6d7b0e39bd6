import Crypto
import Glibc
import SystemPackage
import UnionFS

/// File operations for the store and archives: whole small files, atomic replacement, trees.
/// Nothing here is on a hot path; every call goes through the core's syscall layer (`Sys`) and
/// every error names the path and keeps its errno (`UnionFSError.Kind.io`).
package enum Files {
    static func exists(_ path: String) -> Bool {
        (try? Sys.pathStat(path)) != nil
    }

    static func isDirectory(_ path: String) -> Bool {
        guard let st = try? Sys.pathStat(path, follow: true) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        guard let st = try? Sys.pathStat(path) else { return false }
        return st.st_mode & S_IFMT == S_IFREG
    }

    /// Whether this process may create files in the directory `path` (false on a read-only
    /// filesystem, whatever the permissions say).
    static func isWritableDirectory(_ path: String) -> Bool {
        if let fs = try? Sys.pathStatvfs(path), fs.f_flag & 1 != 0 { return false }  // ST_RDONLY
        return Sys.access(path, W_OK)
    }

    static func size(_ path: String) -> Int64? {
        (try? Sys.pathStat(path)).map { Int64($0.st_size) }
    }

    /// Runs one syscall wrapper; its `Errno` becomes an I/O error whose message starts with
    /// `context` (a path, quoted, or what was being done).
    static func io<R>(_ context: @autoclosure () -> String, _ body: () throws(Errno) -> R) throws(UnionFSError) -> R {
        do { return try body() } catch { throw .io(error, "\(context()): \(error)") }
    }

    /// Makes `path` and its missing parents.
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(UnionFSError) {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            do { try Sys.mkdir(prefix, mode) } catch .fileExists {} catch {
                throw .io(error, "cannot create '\(prefix)': \(error)")
            }
        }
    }

    /// Reads a whole file of at most `limit` bytes: a JSON document, never a layer.
    static func readFile(_ path: String, limit: Int = 16 << 20, what: String? = nil) throws(UnionFSError) -> [UInt8] {
        let name = what ?? "'\(path)'"
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY | O_NOFOLLOW) } catch .noSuchFileOrDirectory {
            throw .notFound("\(name): \(Errno.noSuchFileOrDirectory)")
        } catch { throw .io(error, "\(name): \(error)") }
        defer { Sys.close(fd) }
        let st: stat
        do { st = try Sys.fstat(fd) } catch { throw .io(error, "\(name): \(error)") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw UnionFSError("\(name) is not a regular file") }
        guard st.st_size <= limit else { throw UnionFSError("\(name) is \(st.st_size) bytes, more than the \(limit) allowed") }
        do { return try Sys.readAll(fd, limit: limit) } catch .fileTooLarge {
            throw UnionFSError("\(name) is more than the \(limit) bytes allowed")
        } catch { throw .io(error, "\(name): \(error)") }
    }

    /// Writes `bytes` to `fd`, all of them.
    static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws(UnionFSError) {
        do { try Errno.lift { try bytes.withUnsafeBytes { try Sys.writeAll(fd, $0) } } } catch {
            throw .io(error, "writing '\(path)': \(error)")
        }
    }

    /// Replaces `path` with `bytes` atomically: a temporary file beside it, synced, renamed.
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(UnionFSError) {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd: Int32
        do { fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode) } catch {
            throw .io(error, "cannot create '\(tmp)': \(error)")
        }
        do throws(UnionFSError) {
            try write(fd, bytes, path: tmp)
            try io("syncing '\(tmp)'") { () throws(Errno) in try Sys.fsync(fd) }
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            try? Sys.unlink(tmp)
            throw error
        }
        do { try Sys.rename(tmp, to: path) } catch {
            try? Sys.unlink(tmp)
            throw .io(error, "cannot rename '\(tmp)' to '\(path)': \(error)")
        }
    }

    /// Copies `from` to a new file `to`, hashing the bytes: the digest of what was copied.
    static func copy(_ from: String, to: String) throws(UnionFSError) -> Digest {
        let src: Int32
        do { src = try Sys.open(from, O_RDONLY) } catch { throw .io(error, "'\(from)': \(error)") }
        defer { Sys.close(src) }
        let dst: Int32
        do { dst = try Sys.open(to, O_WRONLY | O_CREAT | O_EXCL, 0o644) } catch {
            throw .io(error, "cannot create '\(to)': \(error)")
        }
        defer { Sys.close(dst) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let n: Int
            do { n = try Errno.lift { try buffer.withUnsafeMutableBytes { try Sys.read(src, $0) } } } catch {
                throw .io(error, "reading '\(from)': \(error)")
            }
            if n == 0 { break }
            let chunk = Array(buffer[0..<n])
            hasher.update(data: chunk)
            try write(dst, chunk, path: to)
        }
        return Digest(hex: hexString(hasher.finalize()))
    }

    /// The names in a directory, without "." and "..", sorted; empty when it does not exist.
    static func list(_ path: String) -> [String] {
        ((try? Sys.entryNames(path)) ?? []).sorted()
    }

    /// Removes `path` and everything below it, never following symlinks; absent is fine.
    static func removeTree(_ path: String) throws(UnionFSError) {
        guard let st = try? Sys.pathStat(path) else { return }
        let isDirectory = st.st_mode & S_IFMT == S_IFDIR
        if isDirectory {
            for name in list(path) { try removeTree(path + "/" + name) }
        }
        do { try Sys.unlink(path, directory: isDirectory) } catch .noSuchFileOrDirectory {} catch {
            throw .io(error, "cannot remove '\(path)': \(error)")
        }
    }

    /// Bytes of regular-file data below `path` (what `image ls` reports as a layer's size).
    static func treeSize(_ path: String) -> Int64 {
        guard let st = try? Sys.pathStat(path) else { return 0 }
        guard st.st_mode & S_IFMT == S_IFDIR else { return st.st_mode & S_IFMT == S_IFREG ? Int64(st.st_size) : 0 }
        return list(path).reduce(0) { $0 + treeSize(path + "/" + $1) }
    }

    /// A fresh directory under `parent` named `prefix-PID-RANDOM`.
    static func makeTemporaryDirectory(in parent: String, prefix: String) throws(UnionFSError) -> String {
        let path = parent + "/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do { try Sys.mkdir(path, 0o700) } catch { throw .io(error, "cannot create '\(path)': \(error)") }
        return path
    }
}

/// Sizes for people: 1.2 MB, as `podman images` shows them (decimal units).
public func humanSize(_ bytes: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(bytes)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    if i == 0 { return "\(bytes) B" }
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[i])"
}
