import CAttr
import Foundation
import Glibc
import XCTest

/// The write-side differential scripts (WriteDifferentialTests) run inside a user namespace,
/// where no `trusted.*` xattr can be written, against the kernel's rootless overlayfs
/// (`userxattr`) there: the merged trees must agree, and our upper must show the same tree
/// under the rootless kernel mount. The namespace maps ids 0-65535 onto themselves, so owners
/// (the `chown` script) and the fixture's files keep their ids, as in a rootless container.
///
/// Lowers are in the rootless form: the fixture's `trusted.overlay.*` markers are moved to
/// `user.overlay.*`, what podman's native rootless driver and `unshare`d kernel mounts write.
final class UserNamespaceWriteTests: WriteTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("making the user namespace needs root here") }
        let probe = try UserNamespace.run("cat /proc/self/uid_map", timeout: 10)
        guard probe.status == 0, probe.stdout.contains("65536") else { throw XCTSkip("no user namespaces here: \(probe.stderr)") }
    }

    /// A shell function printing a tree: path, type, mode, owner, size and link count of
    /// non-directories, symlink targets, content digests, user xattrs. Sorted, stable.
    static let snapshotFunction = """
        snap() (
          cd "$1"
          find . -type d -printf '%p d %m %U:%G\\n' -o -type l -printf '%p l %U:%G -> %l\\n' \\
                 -o -printf '%p %y %m %U:%G %s %n\\n' | LC_ALL=C sort
          find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum
          find . -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m '^user\\.' 2>/dev/null || true
        )
        """

    func testScriptsInUserNamespaceMatchRootlessKernel() throws {
        let started = Date()
        var failures: [String] = []
        for s in WriteDifferentialTests.scripts {
            if let f = try run(s) { failures.append(f) }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n\n"))
        print("UserNamespaceWriteTests: \(WriteDifferentialTests.scripts.count) scripts in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    /// One script: ours, then the kernel, then our upper under the kernel, all in one namespace.
    /// Returns a description of what differed, or nil.
    private func run(_ s: WriteDifferentialTests.Script) throws -> String? {
        let mine = try buildLayers(s.name + "-a-", count: s.layers)
        let theirs = try buildLayers(s.name + "-k-", count: s.layers)
        for l in mine + theirs { try RootlessLayers.moveMarkersToUser(l) }
        let d = try makeDir(s.name)
        for sub in ["mu", "mw", "mm", "ku", "kw", "km", "rm", "out"] { try makeDir(s.name + "/" + sub) }
        let driver = """
            set -e
            \(Self.snapshotFunction)
            cd "\(d)"
            "\(TestEnvironment.binary)" -o "lowerdir=\(mine.joined(separator: ":")),upperdir=\(d)/mu,workdir=\(d)/mw" "\(d)/mm"
            (cd mm && sh -c '\(s.text.replacingOccurrences(of: "'", with: "'\\''"))') > out/mine.log 2>&1 || echo "script failed" >> out/mine.log
            snap mm > out/mine
            umount mm
            mount -t overlay overlay -o "userxattr,lowerdir=\(theirs.joined(separator: ":")),upperdir=\(d)/ku,workdir=\(d)/kw" km
            (cd km && sh -c '\(s.text.replacingOccurrences(of: "'", with: "'\\''"))') > out/kernel.log 2>&1 || echo "script failed" >> out/kernel.log
            snap km > out/kernel
            umount km
            mount -t overlay overlay -o "userxattr,lowerdir=\(d)/mu:\(mine.joined(separator: ":"))" rm
            snap rm > out/remount
            umount rm
            """
        let r = try UserNamespace.run(driver, timeout: 60)
        // Nothing may stay mounted: the namespace is gone, but check the host's table too.
        XCTAssertFalse(MountTable.entries().contains { $0.mountPoint.hasPrefix(d + "/") }, "\(s.name): mount left")
        guard r.status == 0, !r.timedOut else { return "\(s.name): driver failed (\(r.status)): \(r.stderr.suffix(1500))" }
        func read(_ n: String) -> String { (try? String(contentsOfFile: d + "/out/" + n, encoding: .utf8)) ?? "<missing \(n)>" }
        var problems: [String] = []
        if read("mine.log") != read("kernel.log") {
            problems.append("script output differs: ours\n\(read("mine.log"))kernel\n\(read("kernel.log"))")
        }
        if read("mine") != read("kernel") { problems.append("merged trees differ:\n" + diff(read("mine"), read("kernel"))) }
        if read("remount") != read("mine") {
            problems.append("our upper under rootless kernel overlayfs differs:\n" + diff(read("remount"), read("mine")))
        }
        if read("mine").split(separator: "\n").count < 4 { problems.append("fixture too small") }
        return problems.isEmpty ? nil : "script \(s.name): " + problems.joined(separator: "\n")
    }

    /// Lines only on one side, marked `<` (first) and `>` (second).
    private func diff(_ a: String, _ b: String) -> String {
        let la = a.split(separator: "\n"), lb = b.split(separator: "\n")
        let sa = Set(la), sb = Set(lb)
        return (la.filter { !sb.contains($0) }.map { "< \($0)" } + lb.filter { !sa.contains($0) }.map { "> \($0)" })
            .prefix(40).joined(separator: "\n")
    }
}

/// Layers in the rootless on-disk form.
enum RootlessLayers {
    /// Moves every `trusted.overlay.opaque` / `trusted.overlay.whiteout` below `root` to the same
    /// name under `user.`, as rootless kernel overlayfs writes them.
    static func moveMarkersToUser(_ root: String) throws {
        guard let e = FileManager.default.enumerator(atPath: root) else { return }
        var paths = [root]
        while let rel = e.nextObject() as? String { paths.append(root + "/" + rel) }
        for p in paths {
            for name in ["opaque", "whiteout"] {
                var buf = [UInt8](repeating: 0, count: 256)
                let n = lgetxattr(p, "trusted.overlay." + name, &buf, buf.count)
                guard n >= 0 else { continue }
                guard lsetxattr(p, "user.overlay." + name, buf, n, 0) == 0,
                      lremovexattr(p, "trusted.overlay." + name) == 0 else { throw FixtureError("xattr", p) }
            }
        }
    }
}
