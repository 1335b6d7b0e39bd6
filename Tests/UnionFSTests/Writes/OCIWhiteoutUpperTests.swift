import Foundation
import Glibc
import XCTest

/// Issue 14: where `mknod` of a 0:0 character device is refused (Linux before 5.8 without
/// privilege, seccomp profiles), the upper keeps OCI whiteouts (`.wh.NAME`) and opaque markers
/// (`.wh..wh..opq`). The write differential scripts run on such an upper, once with the form
/// forced (`whiteout=oci`) and once with a real refusal (a seccomp filter on the daemon and
/// `whiteout=auto`), against kernel overlayfs on a normal upper: the merged trees, the upper
/// mounted again, `diff` and `commit` must all agree with the kernel's.
final class OCIWhiteoutUpperTests: WriteTestCase {
    func testForcedOCIFormMatchesKernel() throws {
        for s in WriteDifferentialTests.scripts {
            try run(s, options: ",whiteout=oci", launcher: [])
        }
    }

    func testRefusedMknodFallsBackToOCIFormAndMatchesKernel() throws {
        let launcher = try MknodRefusal.build(in: try makeDir("launcher"))
        try MknodRefusal.check(launcher, scratch: try makeDir("probe"))
        for s in WriteDifferentialTests.scripts {
            try run(s, options: "", launcher: [launcher])
        }
    }

    /// `-d` says which form was chosen and why; the option overrides the probe either way; a
    /// wrong value names itself.
    func testChoiceIsLoggedAndForcible() throws {
        let launcher = try MknodRefusal.build(in: try makeDir("launcher"))
        let l = try fx.layer("l").file("f", "f").path
        func start(_ extra: String, launcher: [String], name: String) throws -> String {
            let up = try makeDir(name + "-u"), wk = try makeDir(name + "-w")
            let m = try fuseMount("lowerdir=\(l),upperdir=\(up),workdir=\(wk)" + extra, name: name,
                                  extraArguments: ["-d"], launcher: launcher)
            XCTAssertEqual(unlink(m.mountPoint + "/f"), 0, "unlink through \(name)")
            m.stop()
            var st = stat()
            if extra.contains("oci") || (!launcher.isEmpty && !extra.contains("chardev")) {
                XCTAssertEqual(lstat(up + "/.wh.f", &st), 0, "\(name): .wh.f in the upper")
                XCTAssertNotEqual(lstat(up + "/f", &st), 0, "\(name): no f in the upper")
            } else {
                XCTAssertEqual(lstat(up + "/f", &st), 0, "\(name): f in the upper")
                XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "\(name): f is a whiteout device")
            }
            return m.log
        }
        let refused = try start("", launcher: [launcher], name: "refused")
        XCTAssertTrue(refused.contains("whiteouts as OCI .wh. files (chosen: mknod of a 0:0 character device in the workdir failed: Operation not permitted)"),
                      refused.prefix(2000).description)
        let normal = try start("", launcher: [], name: "normal")
        XCTAssertTrue(normal.contains("whiteouts as 0:0 character devices (chosen: mknod of a 0:0 character device works in the workdir)"),
                      normal.prefix(2000).description)
        let forced = try start(",whiteout=oci", launcher: [], name: "forced")
        XCTAssertTrue(forced.contains("whiteouts as OCI .wh. files (given by an option)"), forced.prefix(2000).description)
        // Forcing devices where mknod is refused: the mount comes up, the unlink then fails.
        let up = try makeDir("dev-u"), wk = try makeDir("dev-w")
        let m = try fuseMount("lowerdir=\(l),upperdir=\(up),workdir=\(wk),whiteout=chardev", name: "dev", launcher: [launcher])
        XCTAssertEqual(errnoOf(unlink(m.mountPoint + "/f")), EPERM)
        XCTAssertTrue(exists(m.mountPoint + "/f"), "a failed unlink loses nothing")
        m.stop()

        let bad = try Run.program(TestEnvironment.binary,
                                  ["-f", "-o", "lowerdir=\(l),upperdir=\(up),workdir=\(wk),whiteout=device", try makeDir("bad")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("option 'whiteout' takes auto, chardev or oci, got 'device'"), bad.stderr)
    }

    /// Names starting `.wh.` would read as markers in an OCI-form upper: refused (EINVAL), and
    /// nothing of that name shows.
    func testMarkerNamesRefusedInOCIUpper() throws {
        _ = try fx.layer("l").file("f", "f").dir("d")
        try mountWritable(["l"], extraOptions: ",whiteout=oci")
        XCTAssertEqual(errnoOf(open(m(".wh.f"), O_CREAT | O_WRONLY, 0o644)), EINVAL)
        XCTAssertEqual(errnoOf(mkdir(m("d/.wh..wh..opq"), 0o755)), EINVAL)
        XCTAssertEqual(errnoOf(rename(m("f"), m(".wh.g"))), EINVAL)
        XCTAssertEqual(errnoOf(link(m("f"), m("d/.wh.x"))), EINVAL)
        XCTAssertEqual(errnoOf(symlink("f", m(".wh.s"))), EINVAL)
        XCTAssertEqual(names(m("")), ["d", "f"])
        // Deleting f leaves its marker, which the mount never shows by name.
        XCTAssertEqual(unlink(m("f")), 0)
        XCTAssertEqual(names(m("")), ["d"])
        XCTAssertFalse(exists(m(".wh.f")))
        XCTAssertTrue(exists(u(".wh.f")))
        // A name the marker cannot be made for (NAME_MAX - 3 bytes or more) cannot be deleted.
        mount.stop()
        let long = String(repeating: "n", count: 253)
        _ = try fx.layer("l2").file(long, "x")
        try mountWritable(["l2"], extraOptions: ",whiteout=oci", name: "long")
        XCTAssertEqual(errnoOf(unlink(m(long))), ENAMETOOLONG)
        XCTAssertTrue(exists(m(long)))
    }

    private func run(_ s: WriteDifferentialTests.Script, options: String, launcher: [String]) throws {
        let mineLowers = try buildLayers(s.name + "-a-", count: s.layers)
        let kernelLowers = try buildLayers(s.name + "-k-", count: s.layers)
        let myUpper = try makeDir(s.name + "/my-upper"), myWork = try makeDir(s.name + "/my-work")
        let kUpper = try makeDir(s.name + "/k-upper"), kWork = try makeDir(s.name + "/k-work")

        let fuse = try fuseMount("lowerdir=" + mineLowers.joined(separator: ":") + ",upperdir=\(myUpper),workdir=\(myWork)" + options,
                                 name: s.name + "/fuse", launcher: launcher)
        try sh(s.text, in: fuse.mountPoint)
        let mine = try TreeSnapshot.walk(fuse.mountPoint)
        fuse.stop()

        let kernel = try kernelMount(lowers: kernelLowers, upper: kUpper, work: kWork, name: s.name + "/kernel")
        try sh(s.text, in: kernel.mountPoint)
        let theirs = try TreeSnapshot.walk(kernel.mountPoint)
        kernel.stop()
        XCTAssertTreesEqual(mine, theirs, ignoringDirectorySize: true, "script \(s.name): OCI-form upper vs kernel")

        // Really the OCI form: no whiteout device, no opaque xattr anywhere in the upper.
        let devices = try Run.program("/usr/bin/find", [myUpper, "-type", "c"])
        XCTAssertEqual(devices.stdout, "", "script \(s.name): whiteout devices in an OCI-form upper")
        let xattrs = try Run.program("/usr/bin/getfattr", ["-R", "-h", "-d", "-m", "overlay", myUpper])
        XCTAssertEqual(xattrs.stdout, "", "script \(s.name): overlay xattrs in an OCI-form upper")

        // The upper mounted again by us (the form detected again, or forced again) and read as
        // the top lower of a read-only stack: the same tree both ways.
        let work2 = try makeDir(s.name + "/my-work-2")
        let again = try fuseMount("lowerdir=" + mineLowers.joined(separator: ":") + ",upperdir=\(myUpper),workdir=\(work2)" + options,
                                  name: s.name + "/fuse-again", launcher: launcher)
        XCTAssertTreesEqual(try TreeSnapshot.walk(again.mountPoint), theirs, ignoringDirectorySize: true,
                            "script \(s.name): OCI-form upper mounted again")
        again.stop()
        let asLower = try fuseMount("lowerdir=" + ([myUpper] + mineLowers).joined(separator: ":"), name: s.name + "/as-lower")
        XCTAssertTreesEqual(try TreeSnapshot.walk(asLower.mountPoint), theirs, ignoringDirectorySize: true,
                            "script \(s.name): OCI-form upper as a lower layer")
        asLower.stop()

        // diff and commit of the OCI-form upper equal those of the kernel's upper.
        let myDiff = try cli(["diff", "-o", "lowerdir=" + mineLowers.joined(separator: ":") + ",upperdir=\(myUpper)"])
        let kDiff = try cli(["diff", "-o", "lowerdir=" + kernelLowers.joined(separator: ":") + ",upperdir=\(kUpper)"])
        XCTAssertEqual(myDiff, kDiff, "script \(s.name): diff of the OCI-form upper vs the kernel's upper")
        XCTAssertEqual(try committedEntries(mineLowers, myUpper, s.name + "/mine.tar"),
                       try committedEntries(kernelLowers, kUpper, s.name + "/kernel.tar"),
                       "script \(s.name): commit of the OCI-form upper vs the kernel's upper")
    }

    /// stdout of a successful `unionfs-swift` subcommand.
    private func cli(_ args: [String]) throws -> String {
        let r = try Run.program(TestEnvironment.binary, args, timeout: 60)
        XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        return r.stdout
    }

    /// The committed layer's entries as `tar -tv` lists them (type, mode, owner, size, name,
    /// link target), without the times of entries written during the test, nor those of
    /// directories: moving a directory with lower content copies its subtree up here, in any
    /// whiteout form, where `mv` on the kernel (EXDEV) copies it keeping the times.
    private func committedEntries(_ lowers: [String], _ upper: String, _ out: String) throws -> [String] {
        let path = tmp + "/" + out
        _ = try cli(["commit", "-o", "lowerdir=" + lowers.joined(separator: ":") + ",upperdir=\(upper)",
                     "--output", path, "--quiet"])
        let r = try Run.program("/usr/bin/tar", ["-tv", "--numeric-owner", "--full-time", "-f", path], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.split(separator: "\n").map { line in
            // perms owner/group size date time name...
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6 else { return String(line) }
            let date = f[3] + " " + f[4]
            let old = date < "2001-09-10"  // 1000000000, the fixtures' time: unchanged entries
            let time = f[0].hasPrefix("d") ? "(directory)" : old ? String(date) : "(written)"
            return [String(f[0]), String(f[1]), String(f[2]), time,
                    f[5].trimmingCharacters(in: .whitespaces)].joined(separator: " ")
        }
    }
}
