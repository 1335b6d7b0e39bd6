import CAttr
import Glibc
import SystemPackage
import UnionFSCore

/// The core's operations driven by path, in process, with no mount: what the FUSE bridge would
/// ask for each system call, done directly on a `UnionFileSystem`. Paths are walked one lookup
/// at a time from the root, as the kernel does; attributes are shown as the bridge shows them
/// (`st_ino` is `InodeNumbers.shown` of the node). Needs no root: new entries belong to the caller.
final class CoreHarness: EdgeCaseHarness {
    let fs: UnionFileSystem
    let caller = Caller(uid: geteuid(), gid: getegid())

    init(lowers: [String], upper: String?, work: String?, namespace: XattrNamespace = .user) throws {
        let stack = try LayerStack(LayerStackConfiguration(lowerdirs: lowers, upperdir: upper, workdir: work,
                                                           xattrNamespace: namespace))
        fs = try UnionFileSystem(stack: stack)
    }

    /// The node id of `path` ("" is the root).
    func node(_ path: String) throws -> NodeID {
        var id = NodeID.root
        for c in path.split(separator: "/") {
            id = try FileName.validating(String(c)) { (n) throws(Errno) in try fs.lookup(parent: id, name: n) }.node
        }
        return id
    }

    /// The parent's node id and the last component of `path`.
    func parent(_ path: String) throws -> (NodeID, String) {
        guard let slash = path.lastIndex(of: "/") else { return (.root, path) }
        return (try node(String(path[..<slash])), String(path[path.index(after: slash)...]))
    }

    /// 0, or the errno `body` threw.
    func errno(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch { return Self.errno(of: error).rawValue }
    }

    static func errno(of error: any Error) -> Errno { error as? Errno ?? .ioError }

    func write(_ path: String, _ content: String) -> Int32 {
        errno { () throws in
            let file: Descriptor
            if let id = try? node(path) {
                file = try fs.open(id, flags: O_WRONLY | O_TRUNC)
            } else {
                let (p, name) = try parent(path)
                file = try fs.create(parent: p, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT | O_TRUNC,
                                     caller: caller).takeDescriptor()
            }
            let fd = file.rawValue
            let bytes = Array(content.utf8)
            _ = try bytes.withUnsafeBytes { (b) throws in try Sys.pwrite(fd, b, 0) }
            fs.release(file)
        }
    }

    func open(_ path: String, flags: Int32) -> Int32 {
        errno { () throws in fs.release(try fs.open(try node(path), flags: flags)) }
    }

    func unlink(_ path: String) -> Int32 {
        errno { () throws in
            let (p, name) = try parent(path)
            try FileName.validating(name) { (n) throws(Errno) in try fs.unlink(parent: p, name: n) }
        }
    }

    func rmdir(_ path: String) -> Int32 {
        errno { () throws in
            let (p, name) = try parent(path)
            try FileName.validating(name) { (n) throws(Errno) in try fs.rmdir(parent: p, name: n) }
        }
    }

    func mkdir(_ path: String) -> Int32 {
        errno { () throws in
            let (p, name) = try parent(path)
            _ = try FileName.validating(name) { (n) throws(Errno) in try fs.mkdir(parent: p, name: n, mode: 0o755, caller: caller) }
        }
    }

    func rename(_ from: String, _ to: String) -> Int32 {
        errno { () throws in
            let (p, a) = try parent(from), (q, b) = try parent(to)
            try FileName.validating(a) { (x) throws(Errno) in
                try FileName.validating(b) { (y) throws(Errno) in try fs.rename(parent: p, name: x, newParent: q, newName: y, flags: 0) }
            }
        }
    }

    func link(_ from: String, _ to: String) -> Int32 {
        errno { () throws in
            let id = try node(from)
            let (q, b) = try parent(to)
            _ = try FileName.validating(b) { (y) throws(Errno) in try fs.link(id, newParent: q, newName: y) }
        }
    }

    func chmod(_ path: String, _ mode: mode_t) -> Int32 {
        errno { () throws in
            var c = AttributeChanges()
            c.mode = mode
            _ = try fs.setattr(try node(path), c, fd: nil)
        }
    }

    func setxattr(_ path: String, _ name: String, _ value: String) -> Int32 {
        errno { () throws in
            let id = try node(path)
            let bytes = Array(value.utf8)
            try name.withCString { (n) throws in
                try bytes.withUnsafeBytes { (v) throws in try fs.setxattr(id, name: n, value: v, flags: 0) }
            }
        }
    }

    func mknodWhiteout(_ path: String) -> Int32 {
        errno { () throws in
            let (p, name) = try parent(path)
            _ = try FileName.validating(name) { (n) throws(Errno) in
                try fs.mknod(parent: p, name: n, mode: S_IFCHR | 0o644, rdev: 0, caller: caller)
            }
        }
    }

    func stat(_ path: String) -> Result<stat, Errno> {
        do {
            let id = try node(path)
            return .success(try fs.getattr(id))
        } catch { return .failure(Self.errno(of: error)) }
    }

    func read(_ path: String) -> Result<String, Errno> {
        do {
            let file = try fs.open(try node(path), flags: O_RDONLY)
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = try buf.withUnsafeMutableBytes { (b) throws in try Sys.pread(file.rawValue, b, Int64(out.count)) }
                if n == 0 { break }
                out += buf[0..<n]
            }
            return .success(String(decoding: out, as: UTF8.self))
        } catch { return .failure(Self.errno(of: error)) }
    }

    func list(_ path: String) -> Result<[(name: String, ino: UInt64)], Errno> {
        do {
            let entries = try fs.readListing(try node(path))
            return .success(entries.map { (name: $0.name.description, ino: $0.ino) }
                .filter { $0.name != "." && $0.name != ".." })
        } catch { return .failure(Self.errno(of: error)) }
    }

    func xattrNames(_ path: String) -> Result<[String], Errno> {
        do {
            guard case .data(let bytes) = try fs.listxattr(try node(path), size: 65536) else { return .success([]) }
            return .success(bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
        } catch { return .failure(Self.errno(of: error)) }
    }

    func getxattr(_ path: String, _ name: String) -> Result<[UInt8], Errno> {
        do {
            let id = try node(path)
            let answer = try name.withCString { (n) throws in try fs.getxattr(id, name: n, size: 65536) }
            guard case .data(let bytes) = answer else { return .success([]) }
            return .success(bytes)
        } catch { return .failure(Self.errno(of: error)) }
    }
}
