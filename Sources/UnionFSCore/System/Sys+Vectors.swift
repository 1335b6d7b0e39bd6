import Glibc
import SystemPackage

extension Sys {
    /// `read(2)` into `buffer`; the bytes read (0 at end of file). Retried on `EINTR`.
    public static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// `writev(2)` of `count` vectors; the bytes written. Retried on `EINTR`.
    public static func writev(_ fd: Int32, _ vectors: UnsafePointer<iovec>, _ count: Int32) throws(Errno) -> Int {
        try retrying { Glibc.writev(fd, vectors, count) }
    }
}
