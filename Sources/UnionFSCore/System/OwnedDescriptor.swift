import Glibc

/// A descriptor closed when the last reference goes, for state that outlives one request (a
/// node's hold on a file whose last name was removed while the kernel still uses it).
package final class OwnedDescriptor: Sendable {
    package let fd: Int32

    package init(_ fd: Int32) { self.fd = fd }

    deinit { Sys.close(fd) }
}
