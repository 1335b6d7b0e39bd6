import Foundation
import Glibc
import XCTest

/// Issue 4, differential tests: the same shell scripts run on unionfs-swift and on kernel
/// overlayfs over identical copies of 1–3 lower layers must give the same merged tree; each
/// resulting upper must then show that tree again under kernel overlayfs, and the kernel's
/// upper must show it under unionfs-swift.
final class WriteDifferentialTests: WriteTestCase {
    /// One operation script: a name for messages, the number of lower layers, the shell text.
    struct Script {
        let name: String
        let layers: Int
        let text: String
    }

    static let scripts: [Script] = [
        Script(name: "create", layers: 1, text: "echo new > new; mkdir -p nd/sub; echo x > nd/sub/x; echo y > dir/new; mkfifo dir/fifo"),
        Script(name: "overwrite", layers: 2, text: "echo over > f; echo over > dir/a; echo over > dir/b"),
        Script(name: "append", layers: 3, text: "echo more >> f; echo more >> dir/sub/c; printf 'x' >> big"),
        Script(name: "truncate", layers: 2, text: "truncate -s 3 f; truncate -s 0 dir/a; truncate -s 100000 dir/b; truncate -s 5 big"),
        Script(name: "chmod", layers: 3, text: "chmod 600 f; chmod 700 dir; chmod 4755 dir/b; chmod 1777 tree/x"),
        Script(name: "chown", layers: 1, text: "chown 123:456 f; chown 7:8 dir/sub; chown -h 9:9 link; chown 5 tree"),
        Script(name: "touch", layers: 2, text: "touch -d '2001-02-03 04:05:06' f dir/sub/c; touch -h -d '2002-01-01' link; touch -m -d '2003-01-01' dir/b"),
        Script(name: "xattrs", layers: 3, text: "setfattr -n user.x -v 1 f; setfattr -n user.d -v 2 dir; setfattr -x user.old g; setfattr -n user.old -v new dir/a"),
        Script(name: "rm", layers: 3, text: "rm f dir/a link; rm dir/m 2>/dev/null || true; rm -f tree/x/y/z"),
        Script(name: "rm-rf", layers: 3, text: "rm -rf dir tree op"),
        Script(name: "mkdir-over-deleted", layers: 3, text: "rm -rf dir && mkdir dir && echo n > dir/n; rm -rf op; mkdir op; rm -rf tree/x; mkdir tree/x"),
        Script(name: "rename-files", layers: 2, text: "mv f f2; mv dir/a dir/sub/a2; mv g f; mv big dir/big"),
        Script(name: "rename-dirs", layers: 3, text: "mv dir dir2; mv tree/x tree/x2; mkdir p; echo p > p/p; mv p dir; mv op dir2/op"),
        Script(name: "rename-dirs-one-layer", layers: 1, text: "mv dir dir2; mv tree/x/y tree/y; mv dir2 tree/x/dir"),
        Script(name: "hard-links", layers: 3, text: "ln f f-hard; ln dir/a dir/sub/a-hard; echo changed >> f-hard; ln g g2; rm g"),
        Script(name: "symlinks", layers: 2, text: "ln -s f s1; ln -s /abs/none s2; rm link; ln -s dir link; ln -s ../f dir/up"),
        Script(name: "lower-hard-links", layers: 3, text: "chmod 600 hl1; echo x >> dir/hl2; ln hl1 hl3"),
        Script(name: "link-over-whiteout", layers: 2, text: "rm f; ln g f; rm dir/a; ln -s ../g dir/a; rm -rf tree; ln big tree"),
        Script(name: "deep-rename", layers: 3, text: "mv tree/x/y tree/y2; mv tree tree2; echo n > tree2/x/new; mv dir/sub tree2/x/y2"),
        Script(name: "rmdir-merged", layers: 3, text: "rm -rf dir/*; rmdir dir; mkdir dir; rm -rf tree/x/*; rmdir tree/x"),
        Script(name: "type-changes", layers: 2, text: "rm f; mkdir f; echo x > f/x; rm -rf op; echo file > op; rm link; mkdir link"),
        Script(name: "read-only-dir", layers: 3, text: "chmod 555 dir; touch dir/new; mkdir dir/nd; chmod 755 dir; chmod 000 g"),
        Script(name: "setgid-dir", layers: 2, text: "touch sg/f; mkdir sg/d; mkdir sg/d/e; echo x > sg/d/e/x"),
        Script(name: "rename-merged-with-whiteouts", layers: 3, text: "rm dir/a dir/m; echo n > dir/n; mv dir dir2; rm tree/x/top; mv tree/x tree/y"),
        Script(name: "rename-over-empty-dir", layers: 2, text: "mv -T dir empty; mkdir n; rm tree/x/y/z; mv -T n tree/x/y"),
        // A write, truncation or O_TRUNC open by a non-root caller clears setuid (and setgid
        // with group execute); root's write and a chown by root keep what the kernel keeps.
        Script(name: "setid-cleared", layers: 3, text: "chmod 6777 f g dir/a; chmod 6755 dir/b big; chmod 2766 dir/sub/c; "
               + "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x >> f; truncate -s 1 g; : > dir/a; echo y >> dir/sub/c'; "
               + "echo rootwrite >> dir/b; chown 5:5 big"),
        Script(name: "utimens-flags", layers: 1, text: "touch -a g; touch -m -d 2005-05-05 dir/a; touch -a -d 2006-06-06 dir/b"),
        Script(name: "mixed-1", layers: 1, text: mixed),
        Script(name: "mixed-2", layers: 2, text: mixed),
        Script(name: "mixed-3", layers: 3, text: mixed),
    ]

    static let mixed = """
        echo a > dir/new; rm -rf tree; mkdir tree; mv dir/sub tree/sub; chmod 751 tree/sub
        ln tree/sub/c hard; setfattr -n user.m -v mixed hard; mv f dir/f; rm -rf op/o; touch -d 2004-04-04 g
        mkdir -p deep/er/est; echo z > deep/er/est/z; mv deep dir/deep; rm dir/b; ln -s hard soft
        """

    /// mtime and link count of every non-directory in `snap` under `root`.
    private func fileTimes(_ root: String, _ snap: TreeSnapshot) -> [String: (mtime: Int, nlink: Int)] {
        var out: [String: (mtime: Int, nlink: Int)] = [:]
        for (k, e) in snap.entries where e.type != "d" {
            var st = stat()
            if lstat(root + "/" + k, &st) == 0 { out[k] = (st.st_mtim.tv_sec, Int(st.st_nlink)) }
        }
        return out
    }

    /// Link counts must agree; so must the mtimes of non-directories whose mtime is older than
    /// the test on either side (a file written during the test has "now" on both sides).
    private func compareTimes(_ mine: [String: (mtime: Int, nlink: Int)], _ theirs: [String: (mtime: Int, nlink: Int)],
                              since start: Int, _ label: String) {
        for (k, t) in mine {
            guard let o = theirs[k] else { continue }
            XCTAssertEqual(t.nlink, o.nlink, "\(label): nlink of /\(k)")
            guard t.mtime < start || o.mtime < start else { continue }
            XCTAssertEqual(t.mtime, o.mtime, "\(label): mtime of /\(k)")
        }
    }

    func testScriptsMatchKernel() throws {
        let start = Int(time(nil)) - 1
        for s in Self.scripts {
            try run(s, start: start)
        }
    }

    private func run(_ s: Script, start: Int) throws {
        let mineLowers = try buildLayers(s.name + "-a-", count: s.layers)
        let kernelLowers = try buildLayers(s.name + "-k-", count: s.layers)
        let myUpper = try makeDir(s.name + "/my-upper"), myWork = try makeDir(s.name + "/my-work")
        let kUpper = try makeDir(s.name + "/k-upper"), kWork = try makeDir(s.name + "/k-work")

        let fuse = try fuseMount("lowerdir=" + mineLowers.joined(separator: ":") + ",upperdir=\(myUpper),workdir=\(myWork)",
                                 name: s.name + "/fuse")
        try sh(s.text, in: fuse.mountPoint)
        let mine = try TreeSnapshot.walk(fuse.mountPoint)
        let myTimes = fileTimes(fuse.mountPoint, mine)
        let bad = mine.inodes.filter { $0.dIno != $0.stIno }
        XCTAssertTrue(bad.isEmpty, "\(s.name): d_ino != st_ino for \(bad.map(\.path))")
        fuse.stop()

        let kernel = try kernelMount(lowers: kernelLowers, upper: kUpper, work: kWork, name: s.name + "/kernel")
        try sh(s.text, in: kernel.mountPoint)
        let theirs = try TreeSnapshot.walk(kernel.mountPoint)
        let theirTimes = fileTimes(kernel.mountPoint, theirs)
        kernel.stop()

        XCTAssertTrue(mine.entries.count > 3, "\(s.name): fixture too small")
        XCTAssertTreesEqual(mine, theirs, ignoringDirectorySize: true, "script \(s.name): unionfs-swift vs kernel")
        compareTimes(myTimes, theirTimes, since: start, "script \(s.name)")

        let problems = try UpperForm.problems(upper: myUpper, lowers: mineLowers)
        XCTAssertTrue(problems.isEmpty, "script \(s.name): upper not in kernel form:\n" + problems.joined(separator: "\n"))

        // Our upper under the kernel.
        let k1 = try kernelMount(lowers: [myUpper] + mineLowers, name: s.name + "/remount-mine")
        let again = try TreeSnapshot.walk(k1.mountPoint)
        compareTimes(fileTimes(k1.mountPoint, again), myTimes, since: start, "script \(s.name) (our upper, kernel)")
        k1.stop()
        XCTAssertTreesEqual(again, mine, ignoringDirectorySize: true, "script \(s.name): our upper under the kernel")

        // The kernel's upper under the kernel again (the reference for the next step is sound).
        let k2 = try kernelMount(lowers: [kUpper] + kernelLowers, name: s.name + "/remount-kernel")
        XCTAssertTreesEqual(try TreeSnapshot.walk(k2.mountPoint), theirs, ignoringDirectorySize: true,
                            "script \(s.name): kernel upper under the kernel")
        k2.stop()

        // The kernel's upper under unionfs-swift.
        let fuseWork = try makeDir(s.name + "/my-work-2")
        let f2 = try fuseMount("lowerdir=" + kernelLowers.joined(separator: ":") + ",upperdir=\(kUpper),workdir=\(fuseWork)",
                               name: s.name + "/fuse-over-kernel-upper")
        let fromKernel = try TreeSnapshot.walk(f2.mountPoint)
        compareTimes(fileTimes(f2.mountPoint, fromKernel), theirTimes, since: start, "script \(s.name) (kernel upper, ours)")
        f2.stop()
        XCTAssertTreesEqual(fromKernel, theirs, ignoringDirectorySize: true, "script \(s.name): kernel upper under unionfs-swift")
    }
}

extension WriteTestCase {
    /// Builds `count` lower layers named `<prefix>L0` (top) ... with content that merges across
    /// them: shadowing, whiteouts, an opaque dir, symlinks, xattrs, owners, a 256 KiB file; all
    /// times fixed so that both copies are identical.
    func buildLayers(_ prefix: String, count: Int) throws -> [String] {
        let names = (0..<count).map { "\(prefix)L\($0)" }
        let bottom = try fx.layer(names[count - 1])
        try bottom.file("f", "f-bottom").file("g", "g", xattrs: ["user.old": "old"])
            .file("dir/a", "a", mode: 0o640, uid: 3, gid: 4).file("dir/b", "b").file("dir/sub/c", "c")
            .file("tree/x/y/z", "z").file("tree/x/y/gone", "gone").symlink("link", to: "f")
            .fileBytes("big", (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 13) })
            .file("op/hidden", "hidden").file("hl1", "hard").dir("sg", mode: 0o2775, gid: 100).dir("empty")
        XCTAssertEqual(link(bottom.abs("hl1"), bottom.abs("dir/hl2")), 0)
        if count >= 2 {
            let mid = try fx.layer(names[count - 2])
            try mid.file("dir/m", "m").file("dir/b", "b-mid", mode: 0o600).whiteout("tree/x/y/gone")
                .dir("op", opaque: "y").file("op/o", "o").dir("dir", mode: 0o750, xattrs: ["user.dir": "mid"])
        }
        if count >= 3 {
            let top = try fx.layer(names[0])
            try top.file("dir/t", "t").file("f", "f-top", mode: 0o600, uid: 11, gid: 12)
                .dir("tree/x", mode: 0o711).file("tree/x/top", "top")
        }
        for n in names {
            let r = try Run.program("/usr/bin/find", [fx.path(n), "-exec", "touch", "-h", "-d", "@1000000000", "{}", "+"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        return names.map { fx.path($0) }
    }
}
