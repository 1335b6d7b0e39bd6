import Glibc
import SystemPackage

extension Sys {
    /// `writev(2)` of `count` vectors; the bytes written. Retried on `EINTR`.
    public static func writev(_ fd: Int32, _ vectors: UnsafePointer<iovec>, _ count: Int32) throws(Errno) -> Int {
        try retrying { Glibc.writev(fd, vectors, count) }
    }
}
