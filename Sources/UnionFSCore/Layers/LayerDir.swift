import Glibc
import Synchronization
import SystemPackage

/// An open directory inside one layer (one layer's part of a merged directory is a
/// `DirectoryPart`, which holds one of these).
///
/// The only ways to make one are `openRoot` (a layer root named by the user, at set-up) and
/// `openChild` (one component below another `LayerDir`, opened with `O_NOFOLLOW`). So a symlink
/// inside a layer can never lead the daemon outside it: every path is walked one component at a
/// time from a layer root, and no symlink is followed on the way.
///
/// The descriptor is `O_RDONLY | O_DIRECTORY` (not `O_PATH`) so that `fgetxattr` and `getdents64`
/// work on it directly. A directory is shared by every node and listing that merges it, so this
/// is a class: its `Descriptor` is closed when the last reference goes.
public final class LayerDir: Sendable {
    /// The directory's descriptor, owned here.
    public let descriptor: Descriptor
    /// Its number, for the `*at` calls made relative to this directory.
    public var fd: Int32 { descriptor.rawValue }

    private init(_ descriptor: consuming Descriptor) {
        self.descriptor = descriptor
        Self.open.add(1, ordering: .relaxed)
    }

    deinit {
        Self.open.subtract(1, ordering: .relaxed)
    }

    /// Layer directories open in this process now (the descriptor budget's measure).
    public static var openCount: Int { open.load(ordering: .relaxed) }
    private static let open = Atomic<Int>(0)

    /// Opens a layer root given by path; symlinks in the user's own path are followed.
    public static func openRoot(path: String) throws(Errno) -> LayerDir {
        let fd = try Errno.lift {
            try path.withCString { p in try Sys.openat(AT_FDCWD, p, O_RDONLY | O_DIRECTORY) }
        }
        return LayerDir(Descriptor(adopting: fd))
    }

    /// Opens the directory `name` directly below this one, refusing symlinks (`ELOOP`/`ENOTDIR`).
    
    public func openChild(_ name: borrowing FileName) throws(Errno) -> LayerDir {
        LayerDir(try Descriptor.open(at: fd, name.cString, O_RDONLY | O_DIRECTORY | O_NOFOLLOW))
    }

    /// Opens `..` of this directory (used only to check that two layer roots do not nest).
    func openParent() throws(Errno) -> LayerDir {
        LayerDir(try Descriptor.open(at: fd, "..", O_RDONLY | O_DIRECTORY))
    }

    /// `fstatat` of an entry in this directory, never following a symlink.
    @inline(__always)
    public func stat(_ name: borrowing FileName) throws(Errno) -> Glibc.stat {
        try Sys.fstatat(fd, name.cString, AT_SYMLINK_NOFOLLOW)
    }

    /// `fstat` of this directory itself.
    public func stat() throws(Errno) -> Glibc.stat { try Sys.fstat(fd) }

    /// Opens a non-directory entry of this directory; `O_NOFOLLOW` is always added.
    @inline(__always)
    public func openFile(_ name: borrowing FileName, _ flags: Int32, _ mode: mode_t = 0) throws(Errno) -> Descriptor {
        try Descriptor.open(at: fd, name.cString, flags | O_NOFOLLOW, mode)
    }

    /// Reads the target of the symlink `name` in this directory.
    public func readlink(_ name: borrowing FileName) throws(Errno) -> [UInt8] {
        var size = 256
        while true {
            var buf = [UInt8](repeating: 0, count: size)
            let n = try Errno.lift { try buf.withUnsafeMutableBytes { b in try Sys.readlinkat(fd, name.cString, b) } }
            if n < size { return Array(buf.prefix(n)) }
            size *= 4
            if size > Int(PATH_MAX) * 4 { throw .fileNameTooLong }
        }
    }

    /// The value of the xattr `name` on this directory, or nil when it has none (`ENODATA`).
    /// Reads at most `limit` bytes; a longer value reports `ERANGE` as nil-with-`tooLong`.
    func xattrPrefix(_ name: UnsafePointer<CChar>, limit: Int) -> XattrProbe {
        withUnsafeTemporaryAllocation(byteCount: limit, alignment: 1) { buf in
            do {
                let n = try Sys.fgetxattr(fd, name, buf)
                return .value(Array(UnsafeRawBufferPointer(rebasing: buf.prefix(n))))
            } catch .outOfRange {
                return .tooLong
            } catch {
                return .absent
            }
        }
    }
}

extension LayerDir {
    /// The xattr `xattr` of the entry `name` of this directory (a symlink itself, never its
    /// target), without opening the entry: `getxattrat(2)` where the kernel has it (6.13),
    /// else `lgetxattr` of `/proc/self/fd/<fd>/<name>`, a path walk through procfs that costs
    /// several times more. Returns the value's length.
    func entryXattr(_ name: borrowing FileName, _ xattr: UnsafePointer<CChar>,
                    _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        if LayerDir.xattrAtCalls.load(ordering: .relaxed) {
            do { return try Sys.getxattrat(fd, name.cString, xattr, buffer) } catch .noFunction {
                LayerDir.xattrAtCalls.store(false, ordering: .relaxed)
            }
        }
        return try withEntryPath(name) { (p) throws(Errno) in try Sys.pathLgetxattr(p, xattr, buffer) }
    }

    /// The xattr names of the entry `name` of this directory, as `entryXattr` reads a value.
    func entryXattrList(_ name: borrowing FileName, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        if LayerDir.xattrAtCalls.load(ordering: .relaxed) {
            do { return try Sys.listxattrat(fd, name.cString, buffer) } catch .noFunction {
                LayerDir.xattrAtCalls.store(false, ordering: .relaxed)
            }
        }
        return try withEntryPath(name) { (p) throws(Errno) in try Sys.pathLlistxattr(p, buffer) }
    }

    /// Whether the kernel has `getxattrat`/`listxattrat` (cleared at the first ENOSYS).
    private static let xattrAtCalls = Atomic<Bool>(true)

    /// Runs `body` with `/proc/self/fd/<fd>/<name>`: a path to the entry `name` of this directory
    /// for the xattr calls that have no descriptor-relative form in glibc 2.36 (and none in
    /// the kernel before 6.13), without opening the entry.
    /// Only for `l*xattr` calls (which never follow the last component), so a symlink `name`
    /// is read itself and never followed.
    @inline(__always)
    func withEntryPath<R>(_ name: borrowing FileName, _ body: (UnsafePointer<CChar>) throws(Errno) -> R) throws(Errno) -> R {
        let n = name.count
        return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32 + n + 2) { (buf) throws(Errno) -> R in
            let p = buf.baseAddress!
            let used = snprintfFD(p, fd)
            p[used] = 0x2f  // "/"
            (p + used + 1).update(from: name.cString, count: n + 1)
            return try body(p)
        }
    }
}

/// What reading a short xattr found.
enum XattrProbe: Equatable {
    case absent
    case value([UInt8])
    case tooLong
}

/// The path of a descriptor under `/proc/self/fd`, for the few calls (`lgetxattr` and friends
/// on symlinks and `O_PATH` descriptors) that have no descriptor-relative form in glibc 2.36.
@inline(__always)
package func withProcFDPath<R: ~Copyable>(_ descriptor: borrowing Descriptor, _ body: (UnsafePointer<CChar>) throws(Errno) -> R) throws(Errno) -> R {
    var buf = (Int64(0), Int64(0), Int64(0), Int64(0))  // 32 bytes
    let fd = descriptor.rawValue
    return try withUnsafeMutableBytes(of: &buf) { (raw) throws(Errno) -> R in
        let p = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
        _ = snprintfFD(p, fd)
        return try body(p)
    }
}

/// Writes "/proc/self/fd/<fd>" into `p` (32 bytes) without Foundation or varargs.
@inline(__always)
fileprivate func snprintfFD(_ p: UnsafeMutablePointer<CChar>, _ fd: Int32) -> Int {
    let prefix: StaticString = "/proc/self/fd/"
    let n = prefix.utf8CodeUnitCount
    UnsafeMutableRawPointer(p).copyMemory(from: prefix.utf8Start, byteCount: n)
    var width = 1, v = Int(fd)
    while v >= 10 { v /= 10; width += 1 }
    v = Int(fd)
    for i in stride(from: n + width - 1, through: n, by: -1) { p[i] = CChar(48 + v % 10); v /= 10 }
    p[n + width] = 0
    return n + width
}
