import Glibc

/// A descriptor closed when the last reference goes, for state that outlives one request (a
/// node's hold on a file whose last name was removed while the kernel still uses it).
final class OwnedDescriptor: Sendable {
    let fd: Int32

    init(_ fd: Int32) { self.fd = fd }

    deinit { Sys.close(fd) }
}
