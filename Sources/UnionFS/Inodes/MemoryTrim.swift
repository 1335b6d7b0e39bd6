import CLinux
import Glibc
import Synchronization

/// Gives freed node memory back to the system after the kernel forgets many inodes at once.
///
/// Forgotten nodes are freed at once, but malloc keeps the pages in its per-thread arenas, so
/// the daemon's RSS would stay at its peak after the kernel drops its inode cache (after a walk
/// of a large tree, or `echo 2 > /proc/sys/vm/drop_caches`). `malloc_trim` returns them; it walks
/// every arena, so it runs at most once a second and only after a large batch of forgets.
final class MemoryTrim: Sendable {
    /// Forgets since the last trim.
    private let forgotten = Atomic<Int>(0)
    /// CLOCK_MONOTONIC seconds of the last trim.
    private let lastTrim = Atomic<Int>(0)
    static let threshold = 4096

    /// Counts `n` forgotten nodes; trims when enough were freed and a second has passed.
    func forgot(_ n: Int) {
        let total = forgotten.add(n, ordering: .relaxed).newValue
        guard total >= Self.threshold else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let last = lastTrim.load(ordering: .relaxed)
        guard now.tv_sec > last,
              lastTrim.compareExchange(expected: last, desired: now.tv_sec, ordering: .relaxed).exchanged
        else { return }
        forgotten.store(0, ordering: .relaxed)
        _ = malloc_trim(0)
    }
}
