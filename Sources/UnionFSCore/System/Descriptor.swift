import Glibc
import SystemPackage

/// An open file descriptor with exactly one owner, closed when that owner lets it go.
///
/// Every descriptor the core opens is one of these from the syscall that made it to the
/// moment it is closed: functions take it `borrowing` to use it and `consuming` to keep it, so
/// the compiler rejects a double close and a leak needs an explicit `take()`. Its raw number
/// (`rawValue`) is lent to the syscalls of `Sys` only for the length of a call.
///
/// The one place a raw number leaves the core is the FUSE file handle (`fh`), which must be a
/// plain integer the kernel hands back on every later request of that open file: `take()`
/// gives up ownership to it, and `init(adopting:)` takes it back (at `release`).
///
/// State shared between requests (a node's hold on an unlinked file, a copied-up reader) needs
/// several owners: that is `SharedDescriptor`, which wraps one of these.
public struct Descriptor: ~Copyable, Sendable {
    /// The descriptor number, valid while this value lives.
    public let rawValue: Int32

    /// Takes ownership of a raw descriptor: one this process opened and nothing else will close
    /// (the FUSE `fh` edge, and descriptors made by calls outside `Sys`).
    @inline(__always)
    public init(adopting rawValue: Int32) { self.rawValue = rawValue }

    /// Gives up ownership: the caller now has to close the number (the bridge stores it as a
    /// file handle and gives it back with `init(adopting:)` at release).
    @inline(__always)
    public consuming func take() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// Closes it now (the same as letting it go; says so where the moment matters).
    public consuming func close() {}

    deinit { Sys.close(rawValue) }

    /// `openat(2)` of `name` in the directory `dirfd` (`O_CLOEXEC` always added).
    @inline(__always)
    public static func open(at dirfd: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32,
                            _ mode: mode_t = 0) throws(Errno) -> Descriptor {
        Descriptor(adopting: try Sys.openat(dirfd, name, flags, mode))
    }

    /// A second descriptor of the same open file (`F_DUPFD_CLOEXEC`).
    public func duplicate() throws(Errno) -> Descriptor {
        Descriptor(adopting: try Sys.dup(rawValue))
    }

    /// `fstat(2)`.
    @inline(__always)
    public func stat() throws(Errno) -> Glibc.stat { try Sys.fstat(rawValue) }
}

/// A descriptor with several owners, closed when the last reference goes: for state that
/// outlives one request (a node's hold on a file whose last name was removed while the kernel
/// still uses it, the read-only descriptor of a copied-up file that earlier readers move to).
package final class SharedDescriptor: Sendable {
    private let descriptor: Descriptor

    package init(_ descriptor: consuming Descriptor) { self.descriptor = descriptor }

    /// The descriptor number, valid while this object lives.
    package var fd: Int32 { descriptor.rawValue }
}
