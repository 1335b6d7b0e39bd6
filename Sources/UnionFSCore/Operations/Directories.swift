import Glibc
import Synchronization
import SystemPackage

/// An open directory: its merged listing, taken at the first `readdir` and again whenever the
/// directory changed since (`Node.listingGeneration`).
///
/// The listing is taken at the first `readdir`, not at `opendir`: with `cache_readdir` the kernel
/// opens a directory it has listed before and then serves the listing from its own cache without
/// asking, so merging at `opendir` would be work thrown away on every warm walk. Offsets are
/// hashes of the names, in whose order the listing is sorted (`ListingOrder`), so a listing
/// taken again after a change goes on where the old one stopped: a name that stayed is seen
/// once, a name added or removed meanwhile may or may not be (as POSIX allows). Every reply
/// therefore shows the directory as it is when the reply is made, which is what lets the kernel
/// cache listings on writable mounts too. One per directory node, shared by its readers
/// (`sharedListing`): dropped when a reader reaches the end, by the descriptor budget, or when
/// the kernel forgets the node; `releasedir` has nothing to free.
public final class DirectoryHandle: Sendable {
    public let node: NodeID
    let directory: Node
    let parentID: NodeID
    let stack: LayerStack
    /// The listing, once taken. Lock order: before node locks (the merge reads the directory
    /// node's state), never taken under one; held across a merge only by the reader of this
    /// handle (the kernel serializes readdir per file). docs/ARCHITECTURE.md §3.
    private let listing = Mutex<Listing?>(nil)
    /// Entries of the chunk after the one last sent, probed ahead (`probeAhead`). A leaf lock:
    /// nothing is taken under it.
    private let ahead = Mutex<ProbedAhead?>(nil)

    /// One merged listing of the directory.
    package struct Listing: @unchecked Sendable {
        /// `.`, `..`, then the merged entries in offset order.
        package let entries: [MergedEntry]
        /// The offset of each entry: a reader resumes after the entry with that offset.
        package let offsets: [Int64]
        /// The directory's layers it was merged from.
        package let layers: [DirectoryPart]
        /// `Node.listingGeneration` when it was taken.
        let generation: UInt64
        /// The upper layer's directory's change time when it was taken, so readdirplus knows
        /// whether the listing still says where each entry lives.
        let upper: UpperChange

        /// The index of the first entry after `offset` (0: the first entry).
        package func start(after offset: Int64) -> Int { ListingOrder.start(after: offset, in: offsets) }
    }

    /// What `probeAhead` found for the entries from `start` on, so far.
    struct ProbedAhead {
        /// Which call to `expectProbes` this answers; a later call or a `takeProbes` ends it.
        let job: UInt64
        let generation: UInt64
        let start: Int
        /// One per entry from `start`: its `lstat` in its lower layer, or nil where the reader
        /// must look itself.
        var stats: [stat?]
    }
    private let jobs = Atomic<UInt64>(0)

    enum UpperChange {
        /// The directory had no upper part.
        case absent
        case at(timespec)
        /// Changed too recently to tell a later change by its time stamp (time stamps are
        /// coarse on some filesystems): readdirplus resolves each entry in full.
        case untrusted
    }

    init(directory: Node, parentID: NodeID, stack: LayerStack) {
        self.node = directory.id
        self.directory = directory
        self.parentID = parentID
        self.stack = stack
    }

    /// The listing as the directory is now: taken on the first call, and again when the
    /// directory changed since the last one.
    package func currentListing() throws(Errno) -> Listing {
        try listing.withLock { (cached) throws(Errno) -> Listing in
            let generation = directory.listingGeneration.load(ordering: .acquiring)
            if let cached, cached.generation == generation { return cached }
            let layers = try directory.directoryLayers()
            let change = try upperChange(layers)
            let dots = (MergedEntry(name: try! Name("."), type: UInt8(DT_DIR), ino: stack.inodes.shown(node)),
                        MergedEntry(name: try! Name(".."), type: UInt8(DT_DIR), ino: stack.inodes.shown(parentID)))
            let (entries, offsets) = try stack.orderedListing(of: layers, after: dots)
            let taken = Listing(entries: entries, offsets: offsets, layers: layers,
                                generation: generation, upper: change)
            cached = taken
            return taken
        }
    }

    /// `.`, `..`, then the merged entries, as the directory is now.
    public func entries() throws(Errno) -> [MergedEntry] { try currentListing().entries }

    /// Readdirplus sent `listing`'s entries up to `range.lowerBound`: the entries of `range` are
    /// to be probed ahead (`probeAhead`, on another thread), and what an earlier call left is
    /// dropped. Returns the job to hand `probeAhead`.
    package func expectProbes(_ listing: Listing, _ range: Range<Int>) -> UInt64 {
        let job = jobs.add(1, ordering: .relaxed).newValue
        var slot = ProbedAhead(job: job, generation: listing.generation, start: range.lowerBound, stats: [])
        slot.stats.reserveCapacity(range.count)
        ahead.withLock { $0 = slot }
        return job
    }

    /// Probes `listing`'s entries in `range` while the kernel and the reader are busy with the
    /// chunk just sent, so the next readdirplus finds their attributes ready (`takeProbes`).
    ///
    /// Only a non-directory whose topmost occurrence is in a lower layer is probed: lower
    /// layers do not change under the mount, so its `lstat` is the one the reader would get,
    /// as long as nothing above it changed, which the reader checks when it uses it
    /// (`UnionFileSystem.listingIsCurrent`). An upper file can change without the daemon
    /// seeing it (a write through passthrough), so it is probed by the reader, after its
    /// request came. Stops as soon as the reader takes what is there.
    package func probeAhead(_ listing: Listing, _ range: Range<Int>, job: UInt64) {
        var batch: [stat?] = []
        batch.reserveCapacity(Self.probeBatch)
        var i = range.lowerBound
        while i < range.upperBound {
            let e = listing.entries[i]
            var found: stat? = nil
            if let dl = stack.listedPart(e, in: listing.layers), !stack.layers[dl.layer].isUpper {
                found = try? e.name.withFileName { (name) throws(Errno) in try stack.probeListed(name, in: dl) }
            }
            batch.append(found)
            i += 1
            if batch.count == Self.probeBatch || i == range.upperBound {
                let going = ahead.withLock { (slot) -> Bool in
                    guard slot?.job == job else { return false }
                    slot!.stats.append(contentsOf: batch)
                    return true
                }
                guard going else { return }
                batch.removeAll(keepingCapacity: true)
            }
        }
    }
    /// Entries published at a time: the reader takes what is there, not waiting for the rest.
    static let probeBatch = 16

    /// What `probeAhead` found for `listing` from `index` on (one per entry, nil where the
    /// reader probes itself), ending the job; empty when it found nothing for them.
    package func takeProbes(_ listing: Listing, from index: Int) -> ArraySlice<stat?> {
        guard let slot = ahead.withLock({ (slot) -> ProbedAhead? in
            defer { slot = nil }
            return slot
        }), slot.generation == listing.generation, slot.start <= index, index - slot.start < slot.stats.count
        else { return [] }
        return slot.stats[(index - slot.start)...]
    }

    /// The change time of the directory's upper part now.
    private func upperChange(_ layers: [DirectoryPart]) throws(Errno) -> UpperChange {
        guard let top = layers.first, top.layer == 0, stack.layers[0].isUpper else { return .absent }
        let ctime = try top.dir.stat().st_ctim
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // A change within the last 100 ms may share its time stamp with the next one.
        let age = Int64(now.tv_sec - ctime.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - ctime.tv_nsec)
        return age > 100_000_000 ? .at(ctime) : .untrusted
    }

    /// True while nothing was created, removed or renamed in the directory's upper part since
    /// `listing` was taken (lower layers never change under a mount). The caller also checks
    /// that the directory did not gain an upper part meanwhile.
    func isCurrent(_ listing: Listing) -> Bool {
        switch listing.upper {
        case .absent: return true
        case .untrusted: return false
        case .at(let then):
            guard let top = listing.layers.first, let now = try? top.dir.stat().st_ctim else { return false }
            return now.tv_sec == then.tv_sec && now.tv_nsec == then.tv_nsec
        }
    }
}

extension UnionFileSystem {
    /// The listing readdir answers from for the directory `id` through the mount: one per
    /// directory node, shared by its readers, made at the first readdir.
    public func sharedListing(_ id: NodeID) throws(Errno) -> DirectoryHandle {
        let n = try node(id)
        guard n.isDirectory else { throw .notDirectory }
        if let held = n.state.withLock({ $0.listing }) { return held }
        let parentID = n.state.withLock { $0.parent?.id } ?? .root
        let made = DirectoryHandle(directory: n, parentID: parentID, stack: stack)
        return n.state.withLock { s in
            if let held = s.listing { return held }
            s.listing = made
            return made
        }
    }

    /// A reader reached the end of `handle`: let the listing (and the layer directories it
    /// holds) go; the next reader takes it again, or the kernel serves it from its cache.
    public func listingRead(_ handle: DirectoryHandle) {
        handle.directory.state.withLock { s in
            if s.listing === handle { s.listing = nil }
        }
    }
}
