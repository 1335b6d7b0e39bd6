import CLinux
import Glibc
import UnionFSCore
import SystemPackage

/// File handles (`fh`): the backing descriptor in the low 32 bits (every operation that only
/// needs the descriptor takes `Handle.fd(fh)`), and above it what the read and write paths must
/// know about the handle without a syscall.
enum Handle {
    /// Opened with `O_DIRECT`: data goes through an aligned buffer (`DirectIO.swift`).
    static let direct: UInt64 = 1 << 32
    /// A lower file opened read-only on a writable mount: once the file is copied up, reads
    /// and attributes come from the upper file, as kernel overlayfs (since 4.19) moves such
    /// readers to the copy (`UnionFileSystem.copiedUpReader`).
    static let lower: UInt64 = 1 << 33
    /// Answered with a passthrough backing file (`PassthroughFiles`): its release ends a
    /// passthrough open of the node, not a cached one.
    static let passthrough: UInt64 = 1 << 34

    /// The `fh` for a file opened with `flags` as `fd` (in a lower layer: `lower`).
    @inline(__always)
    static func make(_ fd: Int32, flags: Int32, lower isLower: Bool = false) -> UInt64 {
        UInt64(UInt32(bitPattern: fd)) | (flags & O_DIRECT != 0 ? direct : 0) | (isLower ? lower : 0)
    }

    /// The descriptor of the handle `fh`.
    @inline(__always)
    static func fd(_ fh: UInt64) -> Int32 { Int32(truncatingIfNeeded: fh) }

    /// The descriptor to read the handle `fh` of node `ino` from: the upper copy for a lower
    /// handle whose file was copied up since it was opened (kept alive by the returned owner).
    @inline(__always)
    static func readDescriptor(_ fs: UnionFileSystem, _ ino: NodeID, _ fh: UInt64) -> (fd: Int32, owner: SharedDescriptor?) {
        if fh & lower != 0, let upper = fs.copiedUpReader(ino) { return (upper.fd, upper) }
        return (fd(fh), nil)
    }
}
