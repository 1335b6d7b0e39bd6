import Foundation
import Glibc
import XCTest

/// Rootless podman (a fresh user with subordinate ID ranges, storage.conf's `mount_program` set
/// to `unionfs-swift`) against rootless podman's native overlay driver (kernel overlayfs with
/// `userxattr` in the user's namespace) doing the same life cycle: import, build (a layer that
/// deletes and replaces lower content, a RUN that deletes a directory and re-creates it), run,
/// change, `podman diff`, commit, the committed image's full tree, save, `rm -a`, storage
/// removal; then `--userns=keep-id`, `--uidmap` and buildah's rootless `bud`.
///
/// runc with the cgroupfs manager: crun refuses this kind of host's hybrid cgroup hierarchy.
final class RootlessPodmanTests: TempDirTestCase {
    static let containerfile = PodmanTests.containerfile + """

    RUN rm -rf /var/lib/dpkg/info && mkdir /var/lib/dpkg/info && echo again > /var/lib/dpkg/info/again
    """

    /// The container's changes: PodmanTests' plus a FIFO.
    static let containerSteps = PodmanTests.containerSteps + "\nmkfifo /new-fifo\n"

    /// Every entry of the image's tree (not the kernel's or podman's mounts): name, type, mode,
    /// owner, size and link count of non-directories, symlink targets.
    static let fullTree = """
        find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /etc/hosts \\
            -o -path /etc/hostname -o -path /etc/resolv.conf \\) -prune -o \\
            \\( -type d -printf '%p d %m %U:%G\\n' -o -type l -printf '%p l %U:%G -> %l\\n' \\
            -o -printf '%p %y %m %U:%G %s %n\\n' \\) | LC_ALL=C sort
        """

    /// Owners and modes inside a container, as its processes see them.
    static let ownersInside = """
        id -u; id -g; stat -c '%u:%g %a %n' / /etc /etc/shells /usr/bin/passwd /var/log
        touch /made-here; mkdir /made-dir; stat -c '%u:%g %a %n' /made-here /made-dir
        """

    struct Outcome { var read = "", diff: [String] = [], committed = "", tree = "", keepID = "", uidmap = "", bud = "" }

    var user: RootlessUser!
    var argvLog = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("creating the test user needs root") }
        for tool in [PodmanStore.podman, "/usr/bin/runc", "/usr/bin/newuidmap", "/usr/bin/buildah"] {
            guard FileManager.default.isExecutableFile(atPath: tool) else { throw XCTSkip("\(tool) is not installed") }
        }
        guard FileManager.default.isExecutableFile(atPath: TestEnvironment.binary) else {
            XCTFail("unionfs-swift is not built at \(TestEnvironment.binary)")
            throw XCTSkip("no binary")
        }
        user = try RootlessUser(subordinateIDs: true, for: self)
    }

    /// A mount program that logs its argv, then runs ours: what podman passes is asserted.
    private func loggingMountProgram() throws -> String {
        let dir = user.home + "/mp"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        argvLog = dir + "/argv.log"
        let script = dir + "/unionfs-swift-logged"
        try "#!/bin/sh\necho \"$*\" >> \(argvLog)\nexec \"\(TestEnvironment.binary)\" \"$@\"\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        for p in [dir, script] { user.own(p) }
        return script
    }

    func testRootlessPodmanOnUnionFSMatchesNativeRootlessOverlay() throws {
        let started = Date()
        let rootfs = try DebootstrapCache.rootfsTarball()
        chmod(DebootstrapCache.directory, 0o755)
        let context = user.home + "/context"
        try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
        try Self.containerfile.write(toFile: context + "/Containerfile", atomically: true, encoding: .utf8)
        user.own(context); user.own(context + "/Containerfile")

        var fuse = try PodmanStore(name: "rootless unionfs-swift", base: user.home + "/fuse",
                                   mountProgram: try loggingMountProgram(), user: user)
        var native = try PodmanStore(name: "rootless kernel overlay", base: user.home + "/native", mountProgram: nil, user: user)
        fuse.runtime = "runc"; native.runtime = "runc"
        addCleanup { fuse.reset(); native.reset() }

        let mine = try scenario(fuse, rootfs: rootfs, context: context)
        let afterFuse = Date()
        let reference = try scenario(native, rootfs: rootfs, context: context)

        XCTAssertEqual(mine.read, reference.read.replacingOccurrences(of: "\noverlay\n", with: "\nfuse.unionfs-swift\n"))
        XCTAssertTrue(mine.read.hasSuffix("fuse.unionfs-swift\n"), "the container's root is not our mount:\n\(mine.read)")
        XCTAssertEqual(mine.diff, reference.diff, "podman diff differs from the native rootless driver's")
        XCTAssertTrue(mine.diff.contains("A /new-fifo") && mine.diff.contains("D /usr/share/common-licenses"), "\(mine.diff)")
        XCTAssertEqual(mine.committed, reference.committed)
        XCTAssertTrue(mine.committed.contains("600 2\n600 2\n750\n/etc/shells\n0\nempty\n"), mine.committed)
        assertSameLines(mine.tree, reference.tree, "committed image's full tree")
        XCTAssertTrue(mine.tree.contains("/var/lib/dpkg/info/again f 644 0:0 6 1"), "the RUN re-creating a directory")
        XCTAssertEqual(mine.keepID, reference.keepID, "owners and modes under --userns=keep-id")
        XCTAssertTrue(mine.keepID.hasPrefix("\(user.uid)\n\(user.gid)\n"), mine.keepID)
        XCTAssertEqual(mine.uidmap, reference.uidmap, "owners and modes under --uidmap/--gidmap")
        // buildah 1.28 with any mount program (fuse-overlayfs 1.10 too) computes a layer by
        // comparing two mounted trees and drops the whiteout of the first entry of a directory
        // deleted and re-created in one RUN (/usr/share/doc/adduser): its bug, not the mount's
        // (the tree it compared lists the entry). Everything else equals the native driver's.
        XCTAssertEqual(mine.bud.replacingOccurrences(of: "..\nadduser\nreplaced\n", with: "..\nreplaced\n"), reference.bud,
                       "buildah bud")

        let argv = (try? String(contentsOfFile: argvLog, encoding: .utf8)) ?? ""
        XCTAssertTrue(argv.contains(",,volatile "), "podman's usual options:\n\(argv)")
        XCTAssertFalse(argv.contains("userxattr"), "podman passes no userxattr; detection must do:\n\(argv)")
        XCTAssertTrue(argv.contains("uidmapping="), "keep-id/uidmap mounts carry uidmapping=:\n\(argv)")
        print("RootlessPodmanTests: unionfs-swift \(Int(afterFuse.timeIntervalSince(started))) s, native "
              + "\(Int(Date().timeIntervalSince(afterFuse))) s\nmount program argv:\n\(argv)")
    }

    private func assertSameLines(_ a: String, _ b: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard a != b else { return }
        let la = a.split(separator: "\n"), lb = b.split(separator: "\n")
        let sa = Set(la), sb = Set(lb)
        let d = la.filter { !sb.contains($0) }.map { "ours:   \($0)" } + lb.filter { !sa.contains($0) }.map { "native: \($0)" }
        XCTFail("\(what) differs (\(la.count) vs \(lb.count) lines):\n" + d.prefix(60).joined(separator: "\n"), file: file, line: line)
    }

    /// The whole rootless life cycle on one storage.
    private func scenario(_ s: PodmanStore, rootfs: String, context: String) throws -> Outcome {
        var out = Outcome()
        try s.ok(["import", rootfs, "localhost/ufs-base:latest"], timeout: 300)
        (out.read, out.diff, out.committed) = try s.buildChangeCommit(context: context, steps: Self.containerSteps)
        out.tree = try s.shell("localhost/ufs-committed", Self.fullTree)
        // keep-id as toolbox runs it: the home directory shared, the user's files the user's.
        let volume = s.base + "/volume"
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        user.own(volume)
        try s.ok(["run", "--name", "keepid", "--network", "none", "--userns=keep-id", "-v", volume + ":/vol"] + s.ulimits
                  + ["localhost/ufs-layer2", "/bin/sh", "-c", Self.ownersInside.replacingOccurrences(of: " /made-", with: " /tmp/made-")
                     + "; echo v > /vol/made-in-container"])
        out.keepID = try s.ok(["logs", "keepid"])
        var st = stat()
        XCTAssertEqual(lstat(volume + "/made-in-container", &st), 0, "[\(s.name)] keep-id: nothing written to the volume")
        XCTAssertEqual(st.st_uid, user.uid, "[\(s.name)] keep-id: a file made in the container is the user's on the host")
        // In the upper: the native driver stores the caller's id in the user's namespace (0, the
        // user); a mount program stores the container's id (the user's uid), as fuse-overlayfs
        // does with podman's uidmapping. Both show the user inside the container.
        let upper = try s.ok(["inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "keepid"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let owner = try s.ok(["unshare", "stat", "-c", "%u", upper + "/tmp/made-here"]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(owner, s.mountProgram == nil ? "0" : "\(user.uid)", "[\(s.name)] keep-id: owner in the upper")
        try s.ok(["rm", "keepid"])
        out.uidmap = try s.ok(["run", "--rm", "--network", "none", "--uidmap", "0:1:5000", "--gidmap", "0:1:5000"] + s.ulimits
                              + ["localhost/ufs-layer2", "/bin/sh", "-c", Self.ownersInside])
        try s.saveChecked("localhost/ufs-committed")

        // buildah, rootless, on the same storage.
        let bud = try s.run(program: "/usr/bin/buildah", ["--storage-driver", "overlay", "bud", "--runtime", "runc",
                                                          "--network", "none", "-t", "localhost/ufs-bud", context], timeout: 300)
        XCTAssertEqual(bud.status, 0, "[\(s.name)] buildah bud: \(bud.stderr.suffix(2000))")
        out.bud = try s.shell("localhost/ufs-bud", PodmanTests.readBothLayers).replacingOccurrences(of: "fuse.unionfs-swift", with: "overlay")

        try s.ok(["rm", "-a", "-f"], timeout: 60)
        try s.ok(["rmi", "-a", "-f"], timeout: 120)
        // Nothing of ours left running or mounted in the user's namespace.
        let daemons = RootlessUser.processes(of: user.uid).filter { pid in
            let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmd.contains("unionfs-swift") && cmd.contains(s.base)
        }
        XCTAssertTrue(daemons.isEmpty, "[\(s.name)] mount daemons left: \(daemons)")
        let mounts = try s.ok(["unshare", "cat", "/proc/self/mounts"])
        XCTAssertFalse(mounts.split(separator: "\n").contains { $0.contains(s.base + "/") && !$0.contains("/overlay-layers") && $0.contains(" fuse") },
                       "[\(s.name)] mounts left:\n\(mounts)")
        // The storage goes away whole: podman's reset, then nothing left that root cannot delete.
        try s.ok(["system", "reset", "-f"], timeout: 120)
        if FileManager.default.fileExists(atPath: s.base + "/root") {
            XCTAssertNoThrow(try FileManager.default.removeItem(atPath: s.base + "/root"), "[\(s.name)] storage not removable")
        }
        return out
    }
}
