import CLinux
import Glibc
import SystemPackage

/// One raw directory entry as `getdents64(2)` returns it; valid only inside the callback.
public struct RawDirectoryEntry {
    public let ino: UInt64
    public let type: UInt8
    /// The name bytes without NUL.
    public let name: UnsafeRawBufferPointer
    /// The name, NUL-terminated, for `*at` calls.
    public let cName: UnsafePointer<CChar>

    public var isDotOrDotDot: Bool {
        (name.count == 1 && name[0] == 0x2e) || (name.count == 2 && name[0] == 0x2e && name[1] == 0x2e)
    }
}

extension Sys {
    /// Reads every entry of the directory `dirfd` with `getdents64(2)` on a fresh descriptor
    /// (so the caller's offset is untouched), in the order the filesystem returns them.
    /// `.` and `..` are skipped.
    public static func forEachEntry(in dirfd: Int32,
                                    _ body: (RawDirectoryEntry) throws(Errno) -> Void) throws(Errno) {
        let dir = try Descriptor.open(at: dirfd, ".", O_RDONLY | O_DIRECTORY)
        let size = 32 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let n = try retrying {
                CLinux.getdents64(dir.rawValue, buffer, size)
            }
            if n == 0 { return }
            var pos = 0
            while pos < n {
                let rec = buffer + pos
                let ino = rec.loadUnaligned(as: UInt64.self)
                let reclen = Int(rec.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                let type = rec.load(fromByteOffset: 18, as: UInt8.self)
                let namePtr = (rec + 19).assumingMemoryBound(to: CChar.self)
                let len = strlen(namePtr)
                let entry = RawDirectoryEntry(
                    ino: ino, type: type,
                    name: UnsafeRawBufferPointer(start: rec + 19, count: len),
                    cName: namePtr)
                if !entry.isDotOrDotDot { try body(entry) }
                pos += reclen
            }
        }
    }
}
