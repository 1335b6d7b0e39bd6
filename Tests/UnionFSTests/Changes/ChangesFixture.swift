import Foundation
import SystemPackage
import UnionFS
import XCTest

/// Temporary directories, shell steps and kernel overlay mounts for the Changes tests.
///
/// Every kernel mount made here is unmounted by `tearDown`, whatever the test did.
class ChangesTestCase: XCTestCase {
    var root = ""
    private var mounts: [String] = []
    private var fuseMounts: [FuseMount] = []

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "unionfs-changes-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        for m in fuseMounts.reversed() { m.stop() }
        fuseMounts = []
        for m in mounts.reversed() {
            if umount2(m, 0) != 0 { _ = umount2(m, Int32(MNT_DETACH)) }
        }
        mounts = []
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs `script` with /bin/sh in `dir` (default: the test root); fails the test on non-zero exit.
    @discardableResult
    func sh(_ script: String, in dir: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        p.currentDirectoryURL = URL(fileURLWithPath: dir ?? root)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: o, as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "sh failed: \(script)\n\(String(decoding: e, as: UTF8.self))", file: file, line: line)
        return text
    }

    /// Makes `path` (relative to the root) and returns its absolute path.
    func dir(_ path: String) throws -> String {
        let p = root + "/" + path
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    /// Mounts kernel overlayfs over `lowers` (top first) with a fresh upper and workdir; returns
    /// (merged, upper). Skips the test when the kernel refuses (no root, no overlay module).
    func kernelMount(lowers: [String], name: String = "k") throws -> (merged: String, upper: String) {
        let upper = try dir("\(name)-upper"), work = try dir("\(name)-work"), merged = try dir("\(name)-merged")
        let data = "lowerdir=\(lowers.joined(separator: ":")),upperdir=\(upper),workdir=\(work)"
        guard mount("overlay", merged, "overlay", 0, data) == 0 else {
            throw XCTSkip("kernel overlayfs mount failed: \(String(cString: strerror(errno)))")
        }
        mounts.append(merged)
        return (merged, upper)
    }

    /// Mounts unionfs-swift (a child daemon) over `lowers` (top first) with a fresh upper and
    /// workdir; returns (merged, upper). Stopped by `tearDown` or by `unmount`.
    func fuseMount(lowers: [String], name: String = "u") throws -> (merged: String, upper: String) {
        guard TestEnvironment.isRoot, access("/dev/fuse", R_OK | W_OK) == 0 else {
            throw XCTSkip("FUSE mounts need root and /dev/fuse")
        }
        let upper = try dir("\(name)-upper"), work = try dir("\(name)-work"), merged = try dir("\(name)-merged")
        let data = "lowerdir=\(lowers.joined(separator: ":")),upperdir=\(upper),workdir=\(work)"
        fuseMounts.append(try FuseMount.start(options: data, mountPoint: merged))
        return (merged, upper)
    }

    /// Unmounts a mount made by `kernelMount` now (so the upper can be read at rest).
    func unmount(_ merged: String) {
        if let i = fuseMounts.firstIndex(where: { $0.mountPoint == merged }) {
            fuseMounts[i].stop()
            XCTAssertFalse(MountTable.isMounted(merged), "unmount \(merged)")
            fuseMounts.remove(at: i)
            return
        }
        guard let i = mounts.firstIndex(of: merged) else { return }
        XCTAssertEqual(umount2(merged, 0), 0, "umount \(merged)")
        mounts.remove(at: i)
    }

    /// The diff lines computed from the upper alone.
    func upperDiff(lowers: [String], upper: String, format: UpperFormat = .any) throws -> [String] {
        try UpperChanges(lowerdirs: lowers, upperdir: upper, format: format).changes().map(\.description)
    }

    /// The diff lines of the full comparison: the lowers' merged view against `merged` (a plain
    /// directory such as a kernel mount).
    func treeDiff(lowers: [String], merged: String) throws -> [String] {
        let old = try LayerStack(LayerStackConfiguration(lowerdirs: lowers))
        return try TreeComparison.changes(from: MergedDirectory(root: old), to: PlainDirectory(path: merged))
            .map(\.description)
    }

    /// The full comparison in process: the lowers' merged view against the UnionView of
    /// lowers + upper (a fresh workdir is made for the stack).
    func viewDiff(lowers: [String], upper: String) throws -> [String] {
        let old = try LayerStack(LayerStackConfiguration(lowerdirs: lowers))
        let work = try dir("view-work-\(UUID().uuidString)")
        let new = try UnionView(LayerStackConfiguration(lowerdirs: lowers, upperdir: upper, workdir: work))
        return try TreeComparison.changes(from: MergedDirectory(root: old), to: MergedDirectory(root: new.stack))
            .map(\.description)
    }

    /// A listing of every path under `path` with type, mode, owner, size, symlink target and
    /// file contents: equal snapshots mean nothing there changed.
    func snapshot(_ path: String) throws -> String {
        try sh("find . -printf '%p %y %m %U %G %s %l\\n' | sort; find . -type f | sort | xargs -r md5sum", in: path)
    }
}
