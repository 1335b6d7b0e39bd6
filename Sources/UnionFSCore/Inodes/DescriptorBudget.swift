/// How many layer directories a mount keeps open before it gives some back.
///
/// Every directory node holds a descriptor for each layer it merges, and every node holds its
/// parent's in its top layer (`ResolvedEntry`). The kernel forgets nodes only under memory
/// pressure, so without a bound a walk over a large tree keeps them all: 15,000 directories
/// present in three layers use up this machine's hard limit of 20,000, and after that every
/// lookup fails with `EMFILE`.
///
/// Once more than `high` are open, the nodes not used since the last sweep drop their entries
/// (`NodeTable.giveBackDescriptors`) until fewer than `low` are open. A descriptor closes when
/// its last holder lets go, and a request in flight holds its own reference to the entry it
/// works on, so nothing is closed under a request. A node whose entry went is found again by
/// its parent and name on its next use (`Node.location`), with a check that the same file
/// is there. The count is per process (`LayerDir.openCount`), as the limit is.
public struct DescriptorBudget: Sendable, Equatable {
    /// The sweep starts above this many open layer directories.
    public let high: Int
    /// The sweep stops below this many.
    public let low: Int

    /// A budget of `high` descriptors; a sweep gives back a fifth of them.
    public init(high: Int) {
        self.high = max(high, 16)
        low = self.high - self.high / 5
    }

    /// Three quarters of the process's open-files limit (`getrlimit`, the soft limit, which the
    /// daemon raises to the hard one first): the rest is for open files and libfuse.
    public static func fromProcessLimit() -> DescriptorBudget {
        guard let limit = Sys.openFileLimit() else { return DescriptorBudget(high: 1 << 20) }
        return DescriptorBudget(high: Int(min(limit, 1 << 24)) / 4 * 3)
    }
}
