import Foundation
import Glibc
import XCTest

/// Issue 4, concurrency: threads creating, writing, renaming and deleting in shared (lower)
/// directories for a bounded time, and racing to copy up the same files. No deadlock (every
/// wait is bounded), no lost or duplicated entries, and the tree is what the operations imply.
final class ConcurrencyTests: WriteTestCase {
    /// What the workers did: the files each expects to exist, with content; problems seen.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var expected: [String: String] = [:]
        private(set) var problems: [String] = []
        private(set) var appends = 0
        func merge(_ files: [String: String], _ found: [String], appends n: Int) {
            lock.lock(); defer { lock.unlock() }
            expected.merge(files) { a, _ in a }
            problems += found
            appends += n
        }
    }

    static let threads = 6
    static let lowerPerThread = 20
    static let line = "0123456789abcdef\n"

    /// One worker: operations on its own names in the shared dirs `s0` and `s1`, its own lower
    /// files, and appends to the shared lower file `log`, until `deadline`.
    static func work(_ root: String, _ t: Int, until deadline: Date, into results: Results) {
        var mine: [String: String] = [:]
        var problems: [String] = []
        var appends = 0
        for j in 0..<lowerPerThread { mine["s\(j % 2)/low-\(t)-\(j)"] = "low \(t) \(j)" }
        func write(_ rel: String, _ s: String, _ flags: Int32) -> Bool {
            let fd = open(root + "/" + rel, flags, 0o644)
            guard fd >= 0 else { problems.append("open \(rel): \(String(cString: strerror(errno)))"); return false }
            defer { close(fd) }
            let n = s.utf8CString.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
            if n != s.utf8.count { problems.append("write \(rel): \(n)") ; return false }
            return true
        }
        var i = 0
        while Date() < deadline && problems.count < 10 {
            let dir = "s\(i % 2)"
            let own = "\(dir)/t\(t)-\(i)"
            switch i % 6 {
            case 0, 3:
                if write(own, "new \(t) \(i)", O_WRONLY | O_CREAT | O_EXCL) { mine[own] = "new \(t) \(i)" }
            case 1:
                // Rename something of ours (maybe a lower file: copy-up) into the other dir.
                if let victim = mine.keys.sorted().first(where: { $0.hasPrefix(dir) }) {
                    let target = "s\((i + 1) % 2)/r\(t)-\(i)"
                    if rename(root + "/" + victim, root + "/" + target) == 0 {
                        mine[target] = mine.removeValue(forKey: victim)
                    } else { problems.append("rename \(victim): \(String(cString: strerror(errno)))") }
                }
            case 2:
                if let victim = mine.keys.sorted().last {
                    if write(victim, "+", O_WRONLY | O_APPEND) { mine[victim]! += "+" }
                }
            case 4:
                if let victim = mine.keys.sorted().dropFirst(mine.count / 2).first {
                    if unlink(root + "/" + victim) == 0 { mine[victim] = nil }
                    else { problems.append("unlink \(victim): \(String(cString: strerror(errno)))") }
                }
            default:
                if write("log", line, O_WRONLY | O_APPEND) { appends += 1 }
                // A listing never shows a name twice.
                if let names = try? FileManager.default.contentsOfDirectory(atPath: root + "/" + dir),
                   Set(names).count != names.count {
                    problems.append("duplicate names in \(dir)")
                }
            }
            i += 1
        }
        results.merge(mine, problems, appends: appends)
    }

    /// Files created in a subdirectory while its ancestor (with lower content) is renamed, and
    /// so copied up whole, are all there afterwards: none is lost with the replaced upper copy.
    func testCreatesDuringDirectoryRename() throws {
        let low = try fx.layer("low")
        for i in 0..<1500 { try low.file("d/bulk/f\(i)", "bulk") }
        try low.file("d/sub/lower", "l")
        try mountWritable(["low"])
        put(m("d/sub/seed"), "seed")   // d and d/sub now exist in the upper too
        final class Made: @unchecked Sendable {
            let lock = NSLock()
            var names: [String] = []
            var done = false
        }
        let made = Made()
        let group = DispatchGroup()
        let dir = m("d/sub")
        group.enter()
        Thread.detachNewThread {
            var i = 0
            while i < 100_000 {
                made.lock.lock(); let stop = made.done; made.lock.unlock()
                if stop { break }
                let fd = open(dir + "/c\(i)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
                if fd >= 0 { close(fd); made.lock.lock(); made.names.append("c\(i)"); made.lock.unlock() }
                i += 1
            }
            group.leave()
        }
        usleep(20_000)
        XCTAssertEqual(errnoOf(rename(m("d"), m("e"))), 0)
        made.lock.lock(); made.done = true; made.lock.unlock()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "creator did not finish")
        let created = Set(made.names)
        XCTAssertGreaterThan(created.count, 0)
        mount.stop()
        let inUpper = Set(names(u("e/sub")))
        XCTAssertEqual(created.subtracting(inUpper).sorted().prefix(20), [], "created files lost by the directory rename")
        XCTAssertTrue(inUpper.isSuperset(of: ["seed", "lower"]))
        XCTAssertFalse(exists(u("d")) && !UpperForm.isWhiteout(u("d")), "old name still a directory")
        try assertUpperWellFormed()
    }

    func testConcurrentChangesInSharedDirectories() throws {
        let low = try fx.layer("low")
        try low.file("log", "start\n").dir("s0").dir("s1").file("untouched", "u")
        for t in 0..<Self.threads {
            for j in 0..<Self.lowerPerThread { try low.file("s\(j % 2)/low-\(t)-\(j)", "low \(t) \(j)") }
        }
        try mountWritable(["low"])
        let results = Results()
        let group = DispatchGroup()
        let deadline = Date().addingTimeInterval(3)
        let root = m("")
        for t in 0..<Self.threads {
            group.enter()
            Thread.detachNewThread {
                ConcurrencyTests.work(root, t, until: deadline, into: results)
                group.leave()
            }
        }
        if group.wait(timeout: .now() + 30) == .timedOut {
            XCTFail("workers did not finish within 30 s: deadlock? daemon log:\n\(mount.log)")
            kill(mount.process.pid, SIGKILL)   // blocked requests then fail and the threads end
            _ = group.wait(timeout: .now() + 10)
            return
        }
        XCTAssertEqual(results.problems, [])
        var expected = results.expected
        expected["untouched"] = "u"
        expected["log"] = "start\n" + String(repeating: Self.line, count: results.appends)
        XCTAssertGreaterThan(results.appends, 0)
        let snap = try TreeSnapshot.walk(m(""))
        let files = Set(snap.entries.filter { $0.value.type != "d" }.keys)
        XCTAssertEqual(files.subtracting(expected.keys).sorted(), [], "entries no operation made")
        XCTAssertEqual(Set(expected.keys).subtracting(files).sorted(), [], "entries lost")
        for (path, content) in expected where files.contains(path) {
            XCTAssertEqual(text(m(path)), content, "content of /\(path)")
        }
        XCTAssertEqual(names(workDir + "/work"), [], "staging junk left behind")
        try finishAndCompareWithKernel()
    }
}
