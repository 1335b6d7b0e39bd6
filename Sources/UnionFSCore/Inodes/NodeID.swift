import Glibc

/// The id by which the kernel knows a node (FUSE's `nodeid`), kept apart from the inode number
/// the mount shows (`st_ino`): the two are equal for most files, but not for the per-name nodes
/// of a lower hard link (`InodeNumbers.linkNode`), so the core never carries one in the other.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public let rawValue: UInt64

    @inline(__always)
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public init(integerLiteral value: UInt64) { self.init(value) }

    /// The root directory's id in FUSE (`FUSE_ROOT_ID`); no other file has it.
    public static let root = NodeID(1)

    public var description: String { String(rawValue) }
}

/// A node the kernel now holds one more lookup of (lookup, create, mkdir, readdirplus...), and
/// its attributes as the mount shows them (`st_ino` is the inode number shown, not the id).
public struct NodeEntry: @unchecked Sendable {
    public let node: NodeID
    public let attributes: stat

    public init(node: NodeID, attributes: stat) {
        self.node = node
        self.attributes = attributes
    }
}
