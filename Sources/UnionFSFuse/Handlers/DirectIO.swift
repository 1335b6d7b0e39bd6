import Glibc
import UnionFSCore
import SystemPackage

/// `O_DIRECT` handles: the backing file is opened `O_DIRECT` too, so data goes straight to the
/// upper's device and alignment rules are the upper filesystem's own.
///
/// The kernel passes a direct read or write to the daemon with the caller's offset and length
/// (no `direct_io` reply flag needed: without it, the kernel's `direct_IO` path still sends the
/// request as is and drops the cached pages it covers), but the data sits in the request
/// buffer after the header: never aligned for an `O_DIRECT` descriptor, which then refused
/// every write with `EINVAL` (issue 13 defect 4), and splicing from an `O_DIRECT` file failed
/// reads the same way. So a direct handle is marked in `fh` (`Handle.direct`), and its data goes
/// through a page-aligned buffer. The filesystem then accepts or refuses the offset and length
/// exactly as it would for a caller on it; the alignment of the caller's own buffer is not
/// visible through FUSE, so only that one check cannot be repeated.
extension Handle {
    /// A page-aligned buffer of at least `size` bytes, for one direct request.
    private static func alignedBuffer(_ size: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer.allocate(byteCount: max(4096, (size + 4095) & ~4095), alignment: 4096)
    }

    /// Writes `data` at `offset` of the direct handle `fd`; the bytes written.
    static func writeDirect(_ fd: Int32, _ data: UnsafeRawBufferPointer, at offset: Int64) throws(Errno) -> Int {
        let buffer = alignedBuffer(data.count)
        defer { buffer.deallocate() }
        if let base = data.baseAddress { buffer.baseAddress!.copyMemory(from: base, byteCount: data.count) }
        return try Sys.pwrite(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<data.count]), offset)
    }

    /// Answers a read of `size` bytes at `offset` of the direct handle `fd`.
    static func readDirect(_ r: consuming Reply, _ fd: Int32, size: Int, at offset: Int64) {
        let buffer = alignedBuffer(size)
        defer { buffer.deallocate() }
        do throws(Errno) {
            let n = try Sys.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]), offset)
            r.bytes(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        } catch { r.error(error) }
    }
}
