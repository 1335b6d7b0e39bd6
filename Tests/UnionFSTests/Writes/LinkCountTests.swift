import Foundation
import Glibc
import XCTest

/// Issue 13, pjdfstest-style: link counts through every name. A script of links, unlinks and
/// renames across directories (upper files, a lower file, lower hard links); after every step
/// each name is stat'ed and its nlink and which names share its inode are recorded. The record
/// must be the same on unionfs-swift (with the kernel's attribute cache, and with timeout=0,
/// where every stat reaches the daemon) and on kernel overlayfs over the same lower.
final class LinkCountTests: WriteTestCase {
    private let names = ["a", "a2", "d1/b", "d1/c", "d2/c", "d2/b2", "e", "e2", "d3/c", "d3/b",
                         "lf", "d2/lf2", "h1", "d0/h2", "h3"]

    private let steps: [(String, (String) -> Int32)] = [
        ("create a, mkdir d1 d2", { r in
            let fd = open(r + "/a", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { return -1 }
            _ = write(fd, "x", 1)
            close(fd)
            return mkdir(r + "/d1", 0o755) | mkdir(r + "/d2", 0o755)
        }),
        ("link a d1/b", { link($0 + "/a", $0 + "/d1/b") }),
        ("link d1/b d2/c", { link($0 + "/d1/b", $0 + "/d2/c") }),
        ("link a a2", { link($0 + "/a", $0 + "/a2") }),
        ("unlink a", { unlink($0 + "/a") }),
        ("rename d1/b d2/b2", { rename($0 + "/d1/b", $0 + "/d2/b2") }),
        ("rename d2/c d1/c", { rename($0 + "/d2/c", $0 + "/d1/c") }),
        ("create e, rename e over a2", { r in
            close(open(r + "/e", O_WRONLY | O_CREAT | O_EXCL, 0o644))
            return rename(r + "/e", r + "/a2")
        }),
        ("link d2/b2 e2", { link($0 + "/d2/b2", $0 + "/e2") }),
        ("unlink d2/b2", { unlink($0 + "/d2/b2") }),
        ("rename d1 d3", { rename($0 + "/d1", $0 + "/d3") }),
        ("unlink d3/c", { unlink($0 + "/d3/c") }),
        ("link lower lf d2/lf2", { link($0 + "/lf", $0 + "/d2/lf2") }),
        ("unlink lf", { unlink($0 + "/lf") }),
        ("link lower hard link h1 h3", { link($0 + "/h1", $0 + "/h3") }),
        ("unlink h3", { unlink($0 + "/h3") }),
        ("unlink h1", { unlink($0 + "/h1") }),
    ]

    /// Runs the script under `root`; one line per step: its result, then every name's nlink
    /// and the first name sharing its inode (or its errno).
    private func record(_ root: String) -> [String] {
        var out: [String] = []
        for (what, step) in steps {
            let rc = step(root) == 0 ? "ok" : String(cString: strerror(errno))
            var stats: [(String, stat?)] = []
            for n in names {
                var st = stat()
                stats.append((n, lstat(root + "/" + n, &st) == 0 ? st : nil))
            }
            let shown = stats.map { (n, st) -> String in
                guard let st else { return "\(n) -" }
                // Which names share an inode; not for the names of the lower hard link, whose
                // st_ino this project keeps across copy-up on purpose (LinkTests), where the
                // kernel gives the copied-up name another one. Their nlink is compared.
                if ["h1", "d0/h2", "h3"].contains(n) { return "\(n) \(st.st_nlink)" }
                let first = stats.first { $0.1?.st_ino == st.st_ino }!.0
                return "\(n) \(st.st_nlink)\(first == n ? "" : "=" + first)"
            }
            out.append("\(what): \(rc) | " + shown.joined(separator: ", "))
        }
        return out
    }

    func testLinkCountsThroughEveryNameMatchKernel() throws {
        let low = try fx.layer("low")
        try low.file("lf", "lower").file("h1", "hard").dir("d0")
        XCTAssertEqual(link(low.abs("h1"), low.abs("d0/h2")), 0)
        let k = try kernelMount(lowers: [fx.path("low")], upper: try makeDir("k-upper"), work: try makeDir("k-work"))
        let theirs = record(k.mountPoint)
        for options in ["", ",timeout=0"] {
            try mountWritable(["low"], extraOptions: options, name: "fuse" + (options.isEmpty ? "" : "-t0"))
            let mine = record(mount.mountPoint)
            for (i, (a, b)) in zip(mine, theirs).enumerated() where a != b {
                XCTFail("step \(i + 1) (options '\(options)'):\n  unionfs: \(a)\n  kernel:  \(b)")
            }
            try finishAndCompareWithKernel()
        }
    }
}
