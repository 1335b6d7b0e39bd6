import Foundation
import Glibc
import UnionFS
import XCTest

/// The command line and `UnionMount` assemble a mount through `MountPlan.assemble`: the same
/// FUSE options, and files created through either get the same modes, whatever the umask of
/// the process that embeds the mount.
final class MountPlanTests: MountTestCase {
    /// Creates a file, a directory and a FIFO under `dir` from a shell whose umask is 000, and
    /// returns their modes as the mount shows them and as the upper stores them.
    private func createdModes(in mnt: String, upper: String) throws -> [String] {
        let r = try Run.program("/bin/sh", ["-c", "umask 000; cd '\(mnt)' && touch f && mkdir d && mkfifo p && "
                                            + "umask 027; touch g && mkdir e"], timeout: 20)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try ["f", "d", "p", "g", "e"].flatMap { name -> [String] in
            var a = stat(), b = stat()
            guard lstat(mnt + "/" + name, &a) == 0, lstat(upper + "/" + name, &b) == 0 else {
                throw XCTSkip("'\(name)' missing: \(String(cString: strerror(errno)))")
            }
            return [name + " " + String(a.st_mode & 0o7777, radix: 8), name + " upper " + String(b.st_mode & 0o7777, radix: 8)]
        }
    }

    func testCommandLineAndEmbeddedMountsCreateTheSameModes() throws {
        try fx.layer("base").file("x", "x")
        // The test process (the embedded mount's host) keeps a umask that would mask modes.
        let old = umask(0o022)
        defer { umask(old) }

        let cliUpper = try makeDir("cli-upper"), cliWork = try makeDir("cli-work")
        let cli = try fuseMount("lowerdir=\(fx.path("base")),upperdir=\(cliUpper),workdir=\(cliWork)", name: "cli")
        let fromCLI = try createdModes(in: cli.mountPoint, upper: cliUpper)

        let embUpper = try makeDir("emb-upper"), embWork = try makeDir("emb-work")
        let mnt = try makeDir("emb")
        let m = try UnionMount(LayerStackConfiguration(lowerdirs: [fx.path("base")], upperdir: embUpper, workdir: embWork),
                               at: mnt)
        addCleanup { m.unmount(); MountTable.forceUnmount(mnt) }
        let fromEmbedded = try createdModes(in: mnt, upper: embUpper)

        XCTAssertEqual(fromEmbedded, fromCLI)
        XCTAssertEqual(fromCLI, ["f 666", "f upper 666", "d 777", "d upper 777", "p 666", "p upper 666",
                                 "g 640", "g upper 640", "e 750", "e upper 750"])
        XCTAssertEqual(umask(0o022), 0o022, "the host's umask is left alone")
    }

    /// Both front ends get the same FUSE options from the same input; labels go only where
    /// SELinux is on; the user's own fsname and allow_other stay.
    func testOneAssemblyOfFuseOptions() throws {
        let parsed = try MountOptions.parse(["lowerdir=/l,nodev,context=\"system_u:object_r:container_file_t:s0:c1,c2\""])
        let plan = MountPlan.assemble(stack: parsed.stack, fileSystem: parsed.fileSystem, fuseOptions: parsed.fuseOptions,
                                      source: "overlay", isRoot: true, selinuxEnabled: false)
        XCTAssertEqual(plan.fuseOptions, ["nodev", "default_permissions", "allow_other", "fsname=overlay", "subtype=unionfs-swift", "ro"])
        XCTAssertEqual(plan.umask, 0)
        let labelled = MountPlan.assemble(stack: parsed.stack, fileSystem: parsed.fileSystem, fuseOptions: parsed.fuseOptions,
                                          isRoot: false, selinuxEnabled: true)
        XCTAssertEqual(labelled.fuseOptions, ["nodev", "context=\"system_u:object_r:container_file_t:s0:c1,c2\"",
                                              "default_permissions", "fsname=unionfs-swift", "subtype=unionfs-swift", "ro"])
        let own = MountPlan.assemble(stack: parsed.stack, fileSystem: parsed.fileSystem,
                                     fuseOptions: ["fsname=mine", "allow_other"], isRoot: false, selinuxEnabled: false)
        XCTAssertEqual(own.fuseOptions, ["fsname=mine", "allow_other", "default_permissions", "subtype=unionfs-swift", "ro"])
        XCTAssertEqual(parsed.plan(source: "overlay").fuseOptions.filter { $0.hasPrefix("fsname=") }, ["fsname=overlay"])
    }

    /// A stack without an upper is mounted read-only, as kernel overlayfs mounts it (a `rw`
    /// given with it is dropped); with an upper, only `ro` makes it so.
    func testReadOnlyStacksMountReadOnly() throws {
        func options(_ o: String) throws -> [String] {
            let parsed = try MountOptions.parse([o])
            return MountPlan.assemble(stack: parsed.stack, fileSystem: parsed.fileSystem, fuseOptions: parsed.fuseOptions,
                                      isRoot: false, selinuxEnabled: false).fuseOptions.filter { $0 == "ro" || $0 == "rw" }
        }
        XCTAssertEqual(try options("lowerdir=/a:/b"), ["ro"])
        XCTAssertEqual(try options("lowerdir=/a,rw"), ["ro"])
        XCTAssertEqual(try options("lowerdir=/a,upperdir=/u,workdir=/w"), [])
        XCTAssertEqual(try options("lowerdir=/a,upperdir=/u,workdir=/w,rw"), ["rw"])
        XCTAssertEqual(try options("lowerdir=/a,upperdir=/u,workdir=/w,ro"), ["ro"])
    }
}
