extension LayerStack {
    /// The node id for `entry`, found as `name` in the directory node `parent`: its reported
    /// inode number, except for a lower file with several links on a writable mount, whose
    /// names get a node each, as copy-up will make them different files (`InodeNumbers.linkNode`).
    public func nodeID(of entry: ResolvedEntry, parent: NodeID, name: borrowing FileName) -> NodeID {
        let number = inodes.reported(FileID(entry.stat))
        guard isWritable, entry.topLayer > 0, entry.stat.st_nlink > 1, !entry.isDirectory else { return NodeID(number) }
        return inodes.linkNode(for: number, parent: parent, name: Name(name))
    }
}
