import Glibc
import SystemPackage

/// The one error type above `Errno`: what went wrong, of which kind, in one line that names the
/// option, path or entry at fault.
///
/// Below the boundaries where user input is checked everything throws `Errno`; at those
/// boundaries (a layer stack opened, an option string parsed, a tar applied, an image stored)
/// an `Errno` is wrapped with what was being done, and keeps its value in `kind`, so a C
/// caller gets `ENOSPC` for a full disk rather than a generic "invalid argument".
public struct UnionFSError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of failure: decides the errno a C caller sees and lets callers branch without
    /// reading messages.
    public enum Kind: Equatable, Sendable {
        /// What was asked for is wrong or unusable: an option, a path of the wrong type, a
        /// mountpoint in use.
        case configuration
        /// A system call failed with this errno (a full disk, a permission, an I/O error).
        case io(Errno)
        /// Input that should have a fixed form does not: a tar entry, a manifest, a digest.
        case corrupt
        /// Something named does not exist: an image, a layer, a blob.
        case notFound
    }

    public let kind: Kind
    public let message: String

    /// A configuration error (the kind of most messages, and what this type was before it
    /// had kinds).
    public init(_ message: String) { self.init(.configuration, message) }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// `"<context>: <error>"`, keeping the kind of `error`: an `Errno` becomes `.io`, a
    /// `UnionFSError` keeps its own kind, anything else is a configuration error.
    public init(_ context: String, wrapping error: any Error) {
        switch error {
        case let e as Errno: self.init(.io(e), "\(context): \(e)")
        case let e as UnionFSError: self.init(e.kind, "\(context): \(e.message)")
        default: self.init(.configuration, "\(context): \(error)")
        }
    }

    /// An I/O failure of `errno` while doing what `message` says.
    public static func io(_ errno: Errno, _ message: String) -> UnionFSError { UnionFSError(.io(errno), message) }
    /// Malformed input, named by `message`.
    public static func corrupt(_ message: String) -> UnionFSError { UnionFSError(.corrupt, message) }
    /// A missing thing, named by `message`.
    public static func notFound(_ message: String) -> UnionFSError { UnionFSError(.notFound, message) }

    /// The errno that stands for this error where only a number can be returned (the C API):
    /// the underlying one for I/O, `ENOENT` for not found, `EINVAL` otherwise.
    public var errno: Int32 {
        switch kind {
        case .io(let e): e.rawValue
        case .notFound: ENOENT
        case .configuration, .corrupt: EINVAL
        }
    }

    public var description: String { message }
}

/// The name this error had before it had kinds; every `ConfigurationError(message)` is a
/// `UnionFSError` of kind `.configuration`.
public typealias ConfigurationError = UnionFSError
