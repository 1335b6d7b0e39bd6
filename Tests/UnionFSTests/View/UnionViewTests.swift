import Glibc
import SystemPackage
import UnionFS
import XCTest

/// Metadata, inode numbers and reads through the in-process `UnionView`.
final class UnionViewTests: ViewTestCase {
    /// Merged dir metadata comes from the topmost directory (§2).
    func testMergedDirectoryMetadataFromTopmost() throws {
        try fx.layer("top").dir("d", mode: 0o1750, uid: 1000, gid: 2000).file("d/a", "a")
        try fx.layer("mid").dir("d", mode: 0o700, uid: 5, gid: 6).file("d/b", "b")
        try fx.layer("bot").dir("d", mode: 0o755, uid: 0, gid: 0).file("d/c", "c")
        let v = try view(["top", "mid", "bot"])
        let st = try v.stat("d")
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFDIR)
        XCTAssertEqual(st.st_mode & 0o7777, 0o1750)
        XCTAssertEqual(st.st_uid, 1000)
        XCTAssertEqual(st.st_gid, 2000)
        XCTAssertEqual(names(v, "d"), ["a", "b", "c"])
    }

    /// The merged root's metadata comes from the top layer's root.
    func testRootMetadataFromTopLayer() throws {
        try fx.layer("top").dir("", mode: 0o750, uid: 7, gid: 8)
        try fx.layer("bot").dir("", mode: 0o755)
        let v = try view(["top", "bot"])
        let st = try v.stat("")
        XCTAssertEqual(st.st_mode & 0o7777, 0o750)
        XCTAssertEqual(st.st_uid, 7)
        XCTAssertEqual(st.st_gid, 8)
    }

    /// File metadata, symlink targets and contents come from the topmost layer holding the name.
    func testFileMetadataContentAndSymlinks() throws {
        try fx.layer("top").file("f", "top", mode: 0o4711, uid: 11, gid: 12)
            .symlink("abs", to: "/etc/passwd").symlink("rel", to: "../x/y").symlink("dangling", to: "nowhere")
        try fx.layer("bot").file("f", "bottom-longer", mode: 0o600).file("g", "g", mode: 0o640, uid: 3, gid: 4)
        let v = try view(["top", "bot"])
        let f = try v.stat("f")
        XCTAssertEqual(f.st_mode & 0o7777, 0o4711)
        XCTAssertEqual(f.st_size, 3)
        XCTAssertEqual(f.st_uid, 11)
        XCTAssertEqual(f.st_gid, 12)
        XCTAssertEqual(try text(v, "f"), "top")
        XCTAssertEqual(try v.stat("g").st_mode & 0o7777, 0o640)
        XCTAssertEqual(try v.readlink("abs"), "/etc/passwd")
        XCTAssertEqual(try v.readlink("rel"), "../x/y")
        XCTAssertEqual(try v.readlink("dangling"), "nowhere")
        XCTAssertEqual(try v.stat("abs").st_mode & S_IFMT, S_IFLNK)
        // A symlink in the middle of a path is not followed.
        XCTAssertErrno([.notDirectory]) { try v.stat("abs/x") }
        XCTAssertEqual(try v.read("g", offset: 0, count: 10), Array("g".utf8))
    }

    /// readdir d_ino equals st_ino for every entry of every directory, inode numbers are unique
    /// per file, and stat is stable (§2, §6.18 read side).
    func testListInodeNumbersMatchStat() throws {
        try fx.layer("top").file("a", "a").dir("d").file("d/x", "x").symlink("l", to: "a").whiteout("gone")
            .dir("only-top").file("only-top/t", "t")
        try fx.layer("mid").file("a", "mid-a").file("d/y", "y").dir("d/sub").file("d/sub/z", "z").file("gone", "g")
        try fx.layer("bot").file("b", "b").file("d/x", "bottom-x").dir("only-bot").file("only-bot/q", "q")
        let v = try view(["top", "mid", "bot"])
        var seen: [UInt64: String] = [:]
        var checked = 0
        func visit(_ path: String) throws {
            for e in try v.list(path) {
                let p = path.isEmpty ? e.name.description : path + "/" + e.name.description
                let st = try v.stat(p)
                XCTAssertEqual(e.ino, UInt64(st.st_ino), "d_ino vs st_ino of \(p)")
                XCTAssertEqual(UInt64(try v.stat(p).st_ino), UInt64(st.st_ino), "st_ino of \(p) not stable")
                XCTAssertEqual(UInt32(e.type), UInt32((st.st_mode & S_IFMT) >> 12), "d_type of \(p)")
                if let other = seen[e.ino] { XCTFail("inode \(e.ino) reported for both \(other) and \(p)") }
                seen[e.ino] = p
                checked += 1
                if st.st_mode & S_IFMT == S_IFDIR { try visit(p) }
            }
        }
        try visit("")
        XCTAssertEqual(checked, 12)
        XCTAssertNil(seen[UInt64(try v.stat("").st_ino)], "the root's inode must not be reused")
    }

    /// Reading a directory or a missing path fails with the right errno.
    func testReadErrors() throws {
        try fx.layer("only").file("f", "f").dir("d")
        let v = try view(["only"])
        XCTAssertErrno([.isDirectory]) { try v.readAll("d") }
        XCTAssertErrno([.noSuchFileOrDirectory]) { try v.readAll("missing") }
        XCTAssertErrno([.notDirectory]) { try v.list("f") }
        XCTAssertErrno([.invalidArgument]) { try v.readlink("f") }
    }

    /// A symlink inside a layer is never followed by the daemon: paths through it fail instead of
    /// reaching the host's files (DEVELOPERS: resolution stays beneath the layer).
    func testSymlinksInLayersAreNeverFollowed() throws {
        try fx.layer("top").symlink("etc", to: "/etc").symlink("up", to: "..").dir("d").symlink("d/loop", to: "../d")
        try fx.layer("bot").file("real", "r")
        let v = try view(["top", "bot"])
        for path in ["etc/passwd", "etc/hostname", "up/bot/real", "d/loop/loop", "up/top/etc"] {
            XCTAssertThrowsError(try v.stat(path), path)
            XCTAssertThrowsError(try v.readAll(path), path)
        }
        XCTAssertThrowsError(try v.list("etc")) { XCTAssertEqual($0 as? Errno, .notDirectory) }
        XCTAssertEqual(try v.readlink("etc"), "/etc")
        XCTAssertEqual(try v.stat("etc").st_mode & S_IFMT, S_IFLNK)
    }
}
