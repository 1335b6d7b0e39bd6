import CFuse3
import Glibc
import UnionFSCore
import SystemPackage

/// `O_DIRECT` handles: the backing file is opened `O_DIRECT` too, so data goes straight to the
/// upper's device and alignment rules are the upper filesystem's own.
///
/// The kernel passes a direct read or write to the daemon with the caller's offset and length
/// (no `direct_io` reply flag needed: without it, the kernel's `direct_IO` path still sends the
/// request as is and drops the cached pages it covers), but the data sits in libfuse's request
/// buffer after the header, or in a pipe: never aligned for an `O_DIRECT` descriptor, which then
/// refused every write with `EINVAL` (issue 13 defect 4), and splicing from an `O_DIRECT` file
/// failed reads the same way. So a direct handle is marked in bit 32 of `fh` (above the
/// descriptor, which every other operation takes as `Int32(truncatingIfNeeded:)`), and its data
/// goes through a page-aligned buffer. The filesystem then accepts or refuses the offset and
/// length exactly as it would for a caller on it; the alignment of the caller's own buffer is
/// not visible through FUSE, so only that one check cannot be repeated.
extension Bridge {
    /// A page-aligned buffer of at least `size` bytes, for one direct request.
    private static func alignedBuffer(_ size: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer.allocate(byteCount: max(4096, (size + 4095) & ~4095), alignment: 4096)
    }

    /// Writes the request's data at `offset` of the direct handle `fd`; the bytes written.
    static func writeDirect(_ fd: Int32, _ bufv: UnsafeMutablePointer<fuse_bufvec>, at offset: off_t) -> Result<Int, Errno> {
        let size = fuse_buf_size(bufv)
        let buffer = alignedBuffer(size)
        defer { buffer.deallocate() }
        var mem = fuse_bufvec()
        mem.count = 1
        mem.buf.size = size
        mem.buf.mem = buffer.baseAddress
        let copied = fuse_buf_copy(&mem, bufv, fuse_buf_copy_flags(0))
        if copied < 0 { return .failure(Errno(rawValue: Int32(truncatingIfNeeded: -copied))) }
        do throws(Errno) {
            return .success(try Sys.pwrite(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<copied]), Int64(offset)))
        } catch { return .failure(error) }
    }

    /// Answers a read of `size` bytes at `offset` of the direct handle `fd`.
    static func readDirect(_ r: consuming Request, _ fd: Int32, size: Int, at offset: off_t) {
        let buffer = alignedBuffer(size)
        defer { buffer.deallocate() }
        do throws(Errno) {
            let n = try Sys.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]), Int64(offset))
            r.reply(buffer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        } catch { r.reply(error: error) }
    }
}
