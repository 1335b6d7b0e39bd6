import Crypto
import Glibc
import UnionFS

/// File operations for the store and archives: whole small files, atomic replacement, trees.
/// Nothing here is on a hot path; everything names the path in its error.
enum Files {
    static func errorText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    /// Whether this process may create files in the directory `path` (false on a read-only
    /// filesystem, whatever the permissions say).
    static func isWritableDirectory(_ path: String) -> Bool {
        var fs = statvfs()
        if statvfs(path, &fs) == 0 && fs.f_flag & 1 != 0 { return false }  // ST_RDONLY
        return access(path, W_OK) == 0
    }

    static func size(_ path: String) -> Int64? {
        var st = stat()
        return lstat(path, &st) == 0 ? Int64(st.st_size) : nil
    }

    /// Makes `path` and its missing parents.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw ImageError("cannot create '\(prefix)': \(errorText())")
            }
        }
    }

    /// Reads a whole file of at most `limit` bytes: a JSON document, never a layer.
    static func readFile(_ path: String, limit: Int = 16 << 20, what: String? = nil) throws -> [UInt8] {
        let name = what ?? "'\(path)'"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ImageError("\(name): \(errorText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { throw ImageError("\(name) is not a regular file") }
        guard st.st_size <= limit else { throw ImageError("\(name) is \(st.st_size) bytes, more than the \(limit) allowed") }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ImageError("\(name): short read") }
            done += n
        }
        return out
    }

    /// Writes `bytes` to `fd`, all of them.
    static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ImageError("writing '\(path)': \(errorText())") }
            done += n
        }
    }

    /// Replaces `path` with `bytes` atomically: a temporary file beside it, synced, renamed.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ImageError("cannot create '\(tmp)': \(errorText())") }
        do {
            try write(fd, bytes, path: tmp)
            guard fsync(fd) == 0 else { throw ImageError("syncing '\(tmp)': \(errorText())") }
            close(fd)
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw ImageError("cannot rename '\(tmp)' to '\(path)': \(errorText(e))")
        }
    }

    /// Copies `from` to a new file `to`, hashing the bytes: the digest of what was copied.
    static func copy(_ from: String, to: String) throws -> Digest {
        let src = open(from, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw ImageError("'\(from)': \(errorText())") }
        defer { close(src) }
        let dst = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard dst >= 0 else { throw ImageError("cannot create '\(to)': \(errorText())") }
        defer { close(dst) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ImageError("reading '\(from)': \(errorText())") }
            if n == 0 { break }
            let chunk = Array(buffer[0..<n])
            hasher.update(data: chunk)
            try write(dst, chunk, path: to)
        }
        return Digest(hex: hexString(hasher.finalize()))
    }

    /// The names in a directory, without "." and "..", sorted; empty when it does not exist.
    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: &e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes `path` and everything below it, never following symlinks; absent is fine.
    static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in list(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 || errno == ENOENT else { throw ImageError("cannot remove '\(path)': \(errorText())") }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw ImageError("cannot remove '\(path)': \(errorText())") }
        }
    }

    /// Bytes of regular-file data below `path` (what `image ls` reports as a layer's size).
    static func treeSize(_ path: String) -> Int64 {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        guard st.st_mode & S_IFMT == S_IFDIR else { return st.st_mode & S_IFMT == S_IFREG ? Int64(st.st_size) : 0 }
        return list(path).reduce(0) { $0 + treeSize(path + "/" + $1) }
    }

    /// A fresh directory under `parent` named `prefix-PID-RANDOM`.
    static func makeTemporaryDirectory(in parent: String, prefix: String) throws -> String {
        let path = parent + "/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(path, 0o700) == 0 else { throw ImageError("cannot create '\(path)': \(errorText())") }
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
