import Glibc

/// The edge cases of docs/SEMANTICS.md §6 as one table of data: the layers before, what a
/// client does, what it must see after. Every harness runs the same rows: in process over the
/// core's operations as any user (`InProcessEdgeCaseTests`), and through a real mount next to
/// kernel overlayfs (`MountEdgeCaseTests`), where the kernel is the oracle.
///
/// Layers are written in the `user` xattr namespace so that the table runs without root, and
/// in both on-disk forms a lower can take (`FixtureForm`). Case 22 (an upper written here mounts
/// under the kernel with the same tree) is not a row: every row checks it, in process by the
/// upper's form (`UpperForm`), on the mount tier by mounting the upper under the kernel.
/// What needs root stays in the mount tests it always had: `security.capability` (case 12),
/// owners other than the caller.
enum EdgeCases {
    static let all: [EdgeCase] = [
        EdgeCase("6.1", "delete a lower file: whiteout, then ENOENT",
                 lowers: [[.file("f", "lower"), .file("keep", "k")]],
                 steps: [.unlink("f")],
                 expect: [.absent("f"), .names("", ["keep"])],
                 upper: [.whiteout("f")]),
        EdgeCase("6.2", "delete an upper-only file: no whiteout",
                 lowers: [[.file("keep", "k")]],
                 steps: [.write("new", "x"), .unlink("new")],
                 expect: [.absent("new"), .names("", ["keep"])],
                 upper: [.absent("new")]),
        EdgeCase("6.3", "rm -rf d; mkdir d over a lower dir: opaque, no lower children",
                 lowers: [[.file("d/a", "a"), .file("d/b", "b"), .file("d/sub/c", "c")]],
                 steps: [.unlink("d/a"), .unlink("d/b"), .unlink("d/sub/c"), .rmdir("d/sub"), .rmdir("d"), .mkdir("d")],
                 expect: [.names("d", [])],
                 upper: [.opaque("d")]),
        EdgeCase("6.4", "recreate over a whiteout: the whiteout is gone",
                 lowers: [[.file("f", "lower")]],
                 steps: [.unlink("f"), .write("f", "new")],
                 expect: [.content("f", "new")],
                 upper: [.file("f")]),
        EdgeCase("6.5", "rename a lower dir: it moves, a whiteout stays",
                 lowers: [[.file("d/a", "a"), .file("d/sub/b", "b")]],
                 steps: [.rename("d", "e")],
                 expect: [.absent("d"), .names("e", ["a", "sub"]), .content("e/sub/b", "b")],
                 upper: [.whiteout("d")],
                 // The kernel without redirect_dir answers EXDEV; this project copies the subtree up
                 // (docs/SEMANTICS.md §3), and the upper still mounts under the kernel.
                 kernelAnswers: [EXDEV]),
        EdgeCase("6.6", "rename a lower file: whiteout at the source, copy at the target",
                 lowers: [[.file("f", "lower")]],
                 steps: [.rename("f", "g")],
                 expect: [.absent("f"), .content("g", "lower")],
                 upper: [.whiteout("f"), .file("g")]),
        EdgeCase("6.7", "rename over a whiteout, a file and a directory",
                 lowers: [[.file("f", "lower"), .file("d/x", "x")]],
                 steps: [.unlink("f"), .write("g", "upper-g"), .rename("g", "f"),
                         .unlink("d/x"), .rmdir("d"), .mkdir("e"), .write("e/y", "y"), .rename("e", "d")],
                 expect: [.content("f", "upper-g"), .absent("g"), .absent("e"), .names("d", ["y"])],
                 upper: [.file("f")]),
        EdgeCase("6.8", "rmdir of a merged dir: ok once every lower entry is whited out, else ENOTEMPTY",
                 lowers: [[.file("d/a", "a"), .file("d/b", "b"), .file("e/a", "a"), .file("e/b", "b")]],
                 steps: [.unlink("d/a"), .unlink("d/b"), .rmdir("d"), .unlink("e/a"), .fails(.rmdir("e"), ENOTEMPTY)],
                 expect: [.absent("d"), .names("e", ["b"])],
                 upper: [.whiteout("d")]),
        EdgeCase("6.9", "three layers: a whiteout in the middle hides the bottom, the upper's name shows",
                 upperBefore: [.file("f", "upper")],
                 lowers: [[.whiteout("f"), .whiteout("g")], [.file("f", "bottom"), .file("g", "bottom"), .file("k", "k")]],
                 steps: [],
                 expect: [.content("f", "upper"), .absent("g"), .names("", ["f", "k"])]),
        EdgeCase("6.10", "an opaque dir in the middle layer stops the merge",
                 lowers: [[.file("d/a", "a")], [.opaque("d"), .file("d/b", "b")], [.file("d/c", "c"), .file("d/a", "bottom")]],
                 steps: [],
                 expect: [.names("d", ["a", "b"]), .content("d/a", "a"), .absent("d/c")]),
        EdgeCase("6.11", "a file over a dir hides it; a dir over a file is not merged with it",
                 lowers: [[.file("x", "file"), .file("y/inner", "i")], [.file("x/hidden", "h"), .file("y", "file")]],
                 steps: [],
                 expect: [.content("x", "file"), .error("x/hidden", ENOTDIR), .names("y", ["inner"])]),
        EdgeCase("6.12", "copy-up keeps mode, times and xattrs, never overlay.*; the parent's mtime stays",
                 lowers: [[.file("d/f", "data", mode: 0o640, xattrs: ["user.a": "1", "user.overlay.secret": "s"])]],
                 steps: [.setxattr("d/f", "user.b", "2")],
                 expect: [.mode("d/f", 0o640), .fixtureMtime("d/f"), .fixtureMtime("d"), .content("d/f", "data"),
                          .xattrs("d/f", ["user.a", "user.b"])],
                 upper: [.file("d/f"), .mode("d/f", 0o640)]),
        EdgeCase("6.13", "a deep copy-up makes the ancestors with their lower metadata",
                 lowers: [[.dir("a", mode: 0o750), .dir("a/b", mode: 0o705), .file("a/b/f", "old")]],
                 steps: [.write("a/b/f", "new")],
                 expect: [.content("a/b/f", "new"), .mode("a", 0o750), .mode("a/b", 0o705), .fixtureMtime("a"),
                          .fixtureMtime("a/b")],
                 upper: [.mode("a", 0o750), .mode("a/b", 0o705), .file("a/b/f")]),
        EdgeCase("6.14", "O_RDONLY copies nothing up; O_WRONLY does; O_TRUNC leaves size 0",
                 lowers: [[.file("r", "read"), .file("w", "write"), .file("t", "trunc")]],
                 steps: [.open("r", O_RDONLY), .open("w", O_WRONLY), .open("t", O_WRONLY | O_TRUNC)],
                 expect: [.content("r", "read"), .content("w", "write"), .content("t", "")],
                 upper: [.absent("r"), .file("w"), .file("t")]),
        EdgeCase("6.15", "a hard link of a lower file: one inode, two names",
                 lowers: [[.file("f", "data")]],
                 steps: [.link("f", "g")],
                 expect: [.content("g", "data"), .nlink("f", 2), .sameFile("f", "g")],
                 upper: [.file("f"), .file("g")]),
        EdgeCase("6.16", "mknod c 0 0 through the mount: EPERM",
                 lowers: [[.file("keep", "k")]],
                 steps: [.fails(.mknodWhiteout("w"), EPERM)],
                 expect: [.absent("w")],
                 upper: [.absent("w")]),
        EdgeCase("6.17", "overlay.* xattrs are hidden",
                 lowers: [[.file("f", "x", xattrs: ["user.overlay.x": "1", "user.a": "1"])]],
                 steps: [],
                 expect: [.xattrs("f", ["user.a"]), .noXattr("f", "user.overlay.x")]),
        EdgeCase("6.18", "st_ino stays across copy-up; d_ino is st_ino",
                 lowers: [[.file("f", "x"), .file("d/g", "y")]],
                 steps: [.noteInode("f"), .noteInode("d/g"), .chmod("f", 0o600), .write("d/g", "z")],
                 expect: [.inodeAsNoted("f"), .inodeAsNoted("d/g"), .direntInodes(""), .direntInodes("d")],
                 upper: [.file("f")]),
        EdgeCase("6.19", "opaque value \"yy\" is not opaque",
                 lowers: [[.dir("d"), .rawOverlayXattr("d", "opaque", "yy"), .file("d/a", "a")], [.file("d/b", "b")]],
                 steps: [],
                 expect: [.names("d", ["a", "b"])]),
        EdgeCase("6.20", "a .wh. name in the upper is a plain file",
                 upperBefore: [.file(".wh.foo", "")],
                 lowers: [[.file("foo", "lower")]],
                 steps: [],
                 expect: [.content("foo", "lower"), .content(".wh.foo", "")],
                 upperNames: [".wh.foo"]),
        EdgeCase("6.21", "diff: a deleted lower dir is one D; same-mode chmod, dir mtime: nothing; a new file: C parent, A file",
                 lowers: [[.file("gone/a", "a"), .file("same", "s", mode: 0o644), .file("p/q", "q")]],
                 steps: [.unlink("gone/a"), .rmdir("gone"), .chmod("same", 0o644), .write("p/new", "n")],
                 expect: [.absent("gone")],
                 diff: ["D /gone", "C /p", "A /p/new"]),
    ]
}

/// One row of the table.
struct EdgeCase: Sendable {
    let id: String
    let title: String
    /// What the upper holds before (in the kernel's form), usually nothing.
    var upperBefore: [FixtureItem] = []
    /// Lower layers, top first.
    let lowers: [[FixtureItem]]
    /// Done in order; a step that is not `fails` must succeed.
    let steps: [EdgeStep]
    /// Checked through the harness (the merged view) after the steps.
    let expect: [EdgeExpectation]
    /// Checked on the upper dir itself after the steps (not for kernel overlayfs's own upper).
    var upper: [UpperExpectation] = []
    /// Names in the upper a step made on purpose that look like OCI markers.
    var upperNames: Set<String> = []
    /// The upper's changes (`A`/`C`/`D` lines, sorted), when the row is about the diff rules.
    var diff: [String]? = nil
    /// Where this project goes beyond kernel overlayfs on purpose: what the kernel answers to
    /// each step instead (the mount tier then checks only that, not the kernel's tree).
    var kernelAnswers: [Int32]? = nil

    init(_ id: String, _ title: String, upperBefore: [FixtureItem] = [], lowers: [[FixtureItem]], steps: [EdgeStep],
         expect: [EdgeExpectation], upper: [UpperExpectation] = [], upperNames: Set<String> = [], diff: [String]? = nil,
         kernelAnswers: [Int32]? = nil) {
        self.id = id
        self.title = title
        self.upperBefore = upperBefore
        self.lowers = lowers
        self.steps = steps
        self.expect = expect
        self.upper = upper
        self.upperNames = upperNames
        self.diff = diff
        self.kernelAnswers = kernelAnswers
    }
}

/// An entry of a fixture layer. Parents are made as needed (mode 0755).
enum FixtureItem: Sendable {
    case file(String, String, mode: mode_t = 0o644, xattrs: [String: String] = [:])
    case dir(String, mode: mode_t = 0o755)
    /// Hides the name below: a char 0:0 device, or `.wh.NAME` in the OCI form.
    case whiteout(String)
    /// An opaque dir: `<ns>.overlay.opaque` = "y", or `DIR/.wh..wh..opq` in the OCI form.
    case opaque(String)
    /// `<ns>.overlay.NAME` = VALUE, whatever the form.
    case rawOverlayXattr(String, String, String)
}

/// What a client does.
indirect enum EdgeStep: Sendable {
    /// Creates or truncates, then writes.
    case write(String, String)
    case open(String, Int32)
    case unlink(String)
    case rmdir(String)
    case mkdir(String)
    case rename(String, String)
    case link(String, String)
    case chmod(String, mode_t)
    case setxattr(String, String, String)
    case mknodWhiteout(String)
    /// Remembers the inode number of the path, for `inodeAsNoted`.
    case noteInode(String)
    /// The step must fail with this errno.
    case fails(EdgeStep, Int32)
}

/// What the merged view must show.
enum EdgeExpectation: Sendable {
    case absent(String)
    /// Lookup fails with this errno.
    case error(String, Int32)
    case content(String, String)
    /// The sorted names of a directory.
    case names(String, [String])
    case mode(String, mode_t)
    /// mtime as the fixture wrote it (`FixtureForm.mtime`).
    case fixtureMtime(String)
    case nlink(String, UInt64)
    case sameFile(String, String)
    /// `user.*` xattr names, sorted.
    case xattrs(String, [String])
    case noXattr(String, String)
    case inodeAsNoted(String)
    /// readdir's d_ino equals lstat's st_ino for every entry of the directory.
    case direntInodes(String)
}

/// What the upper dir itself must hold.
enum UpperExpectation: Sendable {
    case whiteout(String)
    case absent(String)
    case file(String)
    case opaque(String)
    case mode(String, mode_t)
}
