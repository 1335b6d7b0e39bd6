import Foundation
import Glibc
import XCTest

/// Real podman with `unionfs-swift` as its overlay `mount_program`, against the same steps on
/// podman's native kernel-overlay driver: base image from debootstrap, a second layer from a
/// Containerfile that deletes and replaces lower content, a container that changes files of
/// both layers, then `podman diff`, `commit`, a run of the committed image and `save`.
///
/// Note: with a mount program, containers/storage computes diff and commit by mounting the
/// parent and the container and comparing the two trees (its "naive diff"), so those go
/// through this project's read path twice; they are the slow steps of the test.
final class PodmanTests: TempDirTestCase {
    /// The base layer as debootstrap made it, the second layer from the Containerfile.
    static let containerfile = """
    FROM localhost/ufs-base
    RUN rm /etc/issue.net \\
     && rm -rf /usr/share/doc && mkdir -p /usr/share/doc/replaced && echo replaced > /usr/share/doc/replaced/file \\
     && echo overwritten > /etc/issue \\
     && echo layer2 > /layer2-file
    """

    /// Reads what each layer put there (and what layer 2 removed).
    static let readBothLayers = """
    cat /etc/debian_version /etc/issue /layer2-file /usr/share/doc/replaced/file
    ls -a /usr/share/doc
    test ! -e /etc/issue.net && echo no-issue.net
    test -e /usr/share/common-licenses/GPL-3 && echo base-licenses
    grep ' / ' /proc/mounts | cut -d' ' -f3
    """

    /// A container's changes: create, append, delete files and dirs of both layers, rename a
    /// directory with lower content, hard links, chmod, a symlink.
    static let containerSteps = """
    echo new > /new-file
    mkdir -p /new-dir/sub && echo deep > /new-dir/sub/f
    echo appended >> /etc/debian_version
    echo appended >> /etc/issue
    rm /etc/motd /layer2-file
    rm -rf /usr/share/doc/replaced /var/log/apt
    mv /usr/share/common-licenses /opt/licenses
    ln /etc/shells /shells.hardlink
    ln /new-file /new-file.hardlink
    chmod 0600 /etc/shells
    chmod 0750 /srv
    ln -s /etc/shells /shells.symlink
    mkdir /etc/default/newsub
    : > /etc/default/newsub/empty
    """

    /// What the committed image must show.
    static let readCommitted = """
    cat /new-file /new-dir/sub/f /new-file.hardlink
    tail -n1 /etc/debian_version
    cat /etc/issue
    test ! -e /etc/motd && echo no-motd
    test ! -e /layer2-file && echo no-layer2-file
    test ! -e /usr/share/common-licenses && echo licenses-moved
    ls /opt/licenses | wc -l
    stat -c '%a %h' /etc/shells /shells.hardlink
    stat -c '%a' /srv
    readlink /shells.symlink
    ls -A /usr/share/doc | wc -l
    ls /etc/default/newsub
    """

    /// Everything one storage produced, to compare the two drivers.
    struct Outcome {
        var read = "", diff: [String] = [], committed = ""
    }

    var runtime = "crun"

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard TestEnvironment.isRoot else { throw XCTSkip("podman's overlay driver needs root here") }
        guard FileManager.default.isExecutableFile(atPath: PodmanStore.podman) else {
            throw XCTSkip("podman is not installed (apt-get install podman)")
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw XCTSkip("no /dev/fuse") }
        guard FileManager.default.isExecutableFile(atPath: TestEnvironment.binary) else {
            XCTFail("unionfs-swift is not built at \(TestEnvironment.binary)")
            throw XCTSkip("no binary")
        }
    }

    func testPodmanOnUnionFSMatchesNativeOverlay() throws {
        let started = Date()
        let rootfs = try DebootstrapCache.rootfsTarball()
        let context = try makeDir("context")
        try Self.containerfile.write(toFile: context + "/Containerfile", atomically: true, encoding: .utf8)

        let fuse = try PodmanStore(name: "unionfs-swift", base: try makeDir("fuse"), mountProgram: TestEnvironment.binary)
        addCleanup { fuse.reset() }
        let native = try PodmanStore(name: "kernel overlay", base: try makeDir("native"), mountProgram: nil)
        addCleanup { native.reset() }

        try fuse.ok(["import", rootfs, "localhost/ufs-base:latest"], timeout: 300)
        runtime = try pickRuntime(fuse)
        let mine = try scenario(fuse, context: context)
        XCTAssertTrue(fuse.fuseMounts.isEmpty, "mounts left after podman rm: \(fuse.fuseMounts.map(\.mountPoint))")

        try native.ok(["import", rootfs, "localhost/ufs-base:latest"], timeout: 300)
        let reference = try scenario(native, context: context)

        // Reading both layers: what the Containerfile left, on our mount.
        XCTAssertEqual(mine.read, reference.read.replacingOccurrences(of: "\noverlay\n", with: "\nfuse.unionfs-swift\n"))
        XCTAssertTrue(mine.read.hasSuffix("fuse.unionfs-swift\n"), "the container's root is not our mount:\n\(mine.read)")
        XCTAssertTrue(mine.read.contains("overwritten\nlayer2\nreplaced\n.\n..\nreplaced\nno-issue.net\nbase-licenses\n"), mine.read)

        XCTAssertEqual(mine.diff, reference.diff, "podman diff differs from the native driver's")
        for line in ["A /new-file", "A /new-dir/sub/f", "C /etc/debian_version", "C /etc/issue", "D /etc/motd",
                     "D /layer2-file", "D /usr/share/doc/replaced", "D /usr/share/common-licenses",
                     "A /opt/licenses/GPL-3", "A /shells.hardlink", "C /etc/shells", "C /srv", "A /shells.symlink"] {
            XCTAssertTrue(mine.diff.contains(line), "podman diff lacks '\(line)':\n\(mine.diff.joined(separator: "\n"))")
        }

        XCTAssertEqual(mine.committed, reference.committed)
        for expected in ["new\ndeep\nnew\nappended\noverwritten\nappended\n", "no-motd\nno-layer2-file\nlicenses-moved\n",
                         "600 2\n600 2\n750\n/etc/shells\n0\nempty\n"] {
            XCTAssertTrue(mine.committed.contains(expected), "the committed image lacks\n\(expected)in\n\(mine.committed)")
        }
        print("PodmanTests: \(Int(Date().timeIntervalSince(started))) s (runtime \(runtime))")
    }

    /// crun is the default, but it refuses hybrid cgroup hierarchies; runc works there.
    private func pickRuntime(_ store: PodmanStore) throws -> String {
        var errors: [String] = []
        for candidate in ["crun", "runc"] where ["/usr/bin/", "/usr/sbin/"].contains(where: {
            FileManager.default.isExecutableFile(atPath: $0 + candidate)
        }) {
            var probe = store
            probe.runtime = candidate
            let r = try probe.run(["run", "--rm", "--network", "none"] + probe.ulimits + ["localhost/ufs-base", "/bin/true"],
                                  timeout: 60)
            if r.status == 0 && !r.timedOut { return candidate }
            errors.append("\(candidate): \(r.stderr.split(separator: "\n").last ?? "")")
        }
        XCTFail("no OCI runtime works here: \(errors)")
        throw XCTSkip("no runtime")
    }

    /// The whole life cycle on one storage.
    private func scenario(_ store: PodmanStore, context: String) throws -> Outcome {
        var s = store
        s.runtime = runtime
        var out = Outcome()
        (out.read, out.diff, out.committed) = try s.buildChangeCommit(context: context, steps: Self.containerSteps)
        try s.saveChecked("localhost/ufs-committed")
        try s.ok(["rm", "changer"], timeout: 60)
        return out
    }
}
