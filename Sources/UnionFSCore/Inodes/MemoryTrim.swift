import CLinux
import Glibc
import Synchronization

/// Gives freed node memory back to the system after the kernel forgets many inodes.
///
/// Forgotten nodes are freed at once, but malloc keeps the pages in its per-thread arenas, so
/// the daemon's RSS would stay at its peak after the kernel drops its inode cache (after a walk
/// of a large tree, or `echo 2 > /proc/sys/vm/drop_caches`). `malloc_trim` returns them. It walks
/// every arena (a few ms for a heap of tens of MiB), so it runs once per `threshold` freed nodes:
/// well under 1% of the time the kernel spends sending that many forgets.
final class MemoryTrim: Sendable {
    /// Nodes freed since the last trim.
    private let forgotten = Atomic<Int>(0)
    static let threshold = 8192

    /// Counts `n` freed nodes; the caller that crosses the threshold trims.
    func forgot(_ n: Int) {
        let total = forgotten.add(n, ordering: .relaxed).newValue
        guard total >= Self.threshold,
              forgotten.compareExchange(expected: total, desired: 0, ordering: .relaxed).exchanged
        else { return }
        _ = malloc_trim(0)
    }
}
