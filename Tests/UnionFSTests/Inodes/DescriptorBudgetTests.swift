import Dispatch
import Glibc
import SystemPackage
import UnionFS
import XCTest

/// The descriptor budget, in process: nodes give back their layer directories past the budget
/// and are found again by name, through renames, copy-ups and removals.
final class DescriptorBudgetTests: ViewTestCase {
    private let dirs = 200

    /// Three lowers and an upper; `d<i>` is in every lower (600 layer directories in all), with
    /// `f` in each (the top one shows) and `only<layer>` in each.
    private func fileSystem(high: Int) throws -> UnionFileSystem {
        for (k, name) in ["l0", "l1", "l2"].enumerated() {
            let layer = try fx.layer(name)
            for i in 0..<dirs {
                try layer.file("d\(i)/f", "\(name)-\(i)").file("d\(i)/only\(k)", "")
            }
        }
        _ = try fx.layer("up")
        let c = LayerStackConfiguration(lowerdirs: ["l0", "l1", "l2"].map { fx.path($0) },
                                        upperdir: fx.path("up"), workdir: try makeDir("work"))
        var options = FileSystemOptions()
        options.descriptorBudget = DescriptorBudget(high: high)
        return try UnionFileSystem(stack: LayerStack(c), options: options)
    }

    private func lookup(_ fs: UnionFileSystem, _ parent: NodeID, _ name: String) throws -> NodeEntry {
        try fs.lookup(parent: parent, name: name)
    }

    private func read(_ fs: UnionFileSystem, _ id: NodeID) throws -> String {
        let file = try fs.open(id, flags: O_RDONLY)
        var buf = [UInt8](repeating: 0, count: 64)
        let n = Glibc.pread(file.rawValue, &buf, 64, 0)
        return String(decoding: buf.prefix(max(n, 0)), as: UTF8.self)
    }

    /// A walk over 600 layer directories stays within a budget of 64, and every node given back
    /// still answers as it did: attributes, listing, contents.
    func testWalkStaysWithinBudgetAndNodesAnswerAfterwards() throws {
        let before = LayerDir.openCount
        let fs = try fileSystem(high: 64)
        var peak = 0
        var dirIDs: [NodeID] = [], fileIDs: [NodeID] = [], dirStats: [stat] = []
        for i in 0..<dirs {
            let d = try lookup(fs, 1, "d\(i)")
            dirIDs.append(d.node); dirStats.append(d.attributes)
            fileIDs.append(try lookup(fs, d.node, "f").node)
            peak = max(peak, LayerDir.openCount - before)
        }
        XCTAssertLessThanOrEqual(peak, 64 + 16, "layer directories open at the peak of the walk")
        XCTAssertEqual(fs.nodeCount, 2 * dirs + 1)
        for i in 0..<dirs {
            let st = try fs.getattr(dirIDs[i])
            XCTAssertEqual(st.st_ino, dirStats[i].st_ino)
            XCTAssertEqual(st.st_mtim.tv_nsec, dirStats[i].st_mtim.tv_nsec)
            XCTAssertEqual(try read(fs, fileIDs[i]), "l0-\(i)", "contents of d\(i)/f")
            let names = try fs.readListing(dirIDs[i]).map(\.name.description).sorted()
            XCTAssertEqual(names, [".", "..", "f", "only0", "only1", "only2"], "listing of d\(i)")
        }
        XCTAssertLessThanOrEqual(LayerDir.openCount - before, 64 + 16)
    }

    /// Writes through nodes that gave their descriptors back: a create in a merged directory,
    /// a rename of a directory with lower content (its children are then found under the new
    /// name), and an rmdir of a directory the kernel still holds (which keeps answering).
    func testWritesThroughNodesThatGaveBack() throws {
        let fs = try fileSystem(high: 32)
        let caller = Caller(uid: 0, gid: 0)
        let e = try fs.mkdir(parent: 1, name: "e", mode: 0o755, caller: caller)
        let d1 = try lookup(fs, 1, "d1")
        let inside = try lookup(fs, d1.node, "f")
        var ids: [NodeID] = []
        for i in 2..<dirs { ids.append(try lookup(fs, 1, "d\(i)").node) }  // sweeps run

        fs.release(try fs.create(parent: ids[0], name: "new", mode: 0o644, flags: O_WRONLY, caller: caller).takeDescriptor())
        XCTAssertEqual(access(fx.path("up") + "/d2/new", F_OK), 0, "created in the upper")

        try fs.rename(parent: 1, name: "d1", newParent: 1, newName: "moved", flags: 0)
        for i in 3..<dirs { _ = try lookup(fs, 1, "d\(i)") }  // and again
        XCTAssertEqual(try read(fs, inside.node), "l0-1", "d1/f, now moved/f")
        XCTAssertEqual(try fs.getattr(inside.node).st_ino, inside.attributes.st_ino)

        try fs.rmdir(parent: 1, name: "e")
        for i in 3..<dirs { _ = try lookup(fs, 1, "d\(i)") }
        let gone = try fs.getattr(e.node)
        XCTAssertEqual(gone.st_mode & S_IFMT, S_IFDIR, "a removed directory still held answers getattr")
        XCTAssertErrno([.noSuchFileOrDirectory], { try self.lookup(fs, 1, "e") })
    }

    /// Four threads look up, stat, read, create in and rename between merged directories for
    /// two seconds with a budget of 16, so that sweeps run under them all the time: no request
    /// fails that would not fail without the budget, and every file ends where it was put.
    func testConcurrentUseWhileSweeping() throws {
        let fs = try fileSystem(high: 16)
        let caller = Caller(uid: 0, gid: 0)
        let count = dirs
        let ids = try (0..<count).map { try lookup(fs, 1, "d\($0)").node }
        final class Problems: @unchecked Sendable {
            private let lock = NSLock()
            private(set) var list: [String] = []
            func add(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
        }
        let problems = Problems()
        let deadline = DispatchTime.now() + .seconds(2)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            var k = 0
            while DispatchTime.now() < deadline {
                let i = (k * 7 + t * 13) % count
                k += 1
                do {
                    let f = try fs.lookup(parent: ids[i], name: "f")
                    _ = try fs.getattr(f.node)
                    _ = try fs.readListing(ids[(i + 1) % count])
                    let name = "t\(t)-\(k)"
                    fs.release(try fs.create(parent: ids[i], name: name, mode: 0o644, flags: O_WRONLY, caller: caller).takeDescriptor())
                    try fs.rename(parent: ids[i], name: name, newParent: ids[(i + 5) % count], newName: name, flags: 0)
                    _ = try fs.lookup(parent: ids[(i + 5) % count], name: name)
                } catch {
                    problems.add("thread \(t) step \(k) in d\(i): \(error)")
                }
            }
        }
        XCTAssertEqual(problems.list, [])
        for i in 0..<dirs { _ = try fs.getattr(ids[i]) }
        XCTAssertLessThanOrEqual(LayerDir.openCount, 16 + 64, "layer directories open after the run")
    }
}
