/// Notifications the daemon sends unasked, in the kernel's layouts: they tell the kernel that
/// something it cached changed behind its back (another name of a hard-linked file, a subtree
/// moved by a directory rename). Written by the same code as replies (`DeviceChannel.notify`).
enum Notification {
    /// `fuse_notify_inval_inode_out` (24 bytes): drop the attributes of `node` and its cached
    /// data from `offset`, `length` bytes (0: to the end; a negative offset: attributes only).
    static func invalInode(node: UInt64, offset: Int64, length: Int64, _ w: inout WireWriter) {
        w.put(node); w.put(offset); w.put(length)
    }

    /// `fuse_notify_store_out` (24 bytes), followed by `size` bytes of data: store them in the
    /// page cache of `node` from `offset` on, marked up to date.
    static func store(node: UInt64, offset: UInt64, size: Int, _ w: inout WireWriter) {
        w.put(node); w.put(offset); w.put(UInt32(size)); w.put(UInt32(0))
    }

    /// `fuse_notify_inval_entry_out` (16 bytes), followed by the name and its NUL: forget the
    /// name `nameLength` bytes long in directory `parent`.
    static func invalEntry(parent: UInt64, nameLength: Int, _ w: inout WireWriter) {
        w.put(parent); w.put(UInt32(nameLength)); w.put(UInt32(0))
    }
}
