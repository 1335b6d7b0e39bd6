import CAttr
import Foundation
import Glibc
import SystemPackage
import UnionFS

/// How the lowers of a table row are written on disk. Both use the `user` xattr namespace (so
/// no root is needed) and the kernel's char 0:0 whiteout in the upper.
enum FixtureForm: String, CaseIterable {
    /// Char 0:0 whiteouts and `user.overlay.opaque` = "y": what kernel overlayfs reads (`userxattr`).
    case overlay
    /// `.wh.NAME` and `.wh..wh..opq` in the lowers, as image tools unpack layers: read by this
    /// project only (the kernel takes them for plain files).
    case oci

    /// The time every fixture entry carries, so a row can tell an mtime left alone.
    static let mtime = timespec(tv_sec: 1_000_000_000, tv_nsec: 0)

    /// Writes `items` into `dir` (made if missing); `form` nil writes the kernel's form (uppers).
    static func write(_ items: [FixtureItem], into dir: String, form: FixtureForm) throws {
        try mkdirs(dir)
        for item in items {
            switch item {
            case .file(let rel, let content, let mode, let xattrs):
                try mkdirs(parent(dir + "/" + rel))
                let p = dir + "/" + rel
                let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode)
                guard fd >= 0 else { throw FixtureError("open", p) }
                let bytes = Array(content.utf8)
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                close(fd)
                guard n == bytes.count else { throw FixtureError("write", p) }
                guard chmod(p, mode) == 0 else { throw FixtureError("chmod", p) }
                for (k, v) in xattrs { try setXattr(p, k, v) }
            case .dir(let rel, let mode):
                let p = dir + "/" + rel
                try mkdirs(p)
                guard chmod(p, mode) == 0 else { throw FixtureError("chmod", p) }
            case .whiteout(let rel):
                let p = dir + "/" + rel
                try mkdirs(parent(p))
                switch form {
                case .overlay:
                    guard mknod(p, S_IFCHR, 0) == 0 else { throw FixtureError("mknod", p) }
                case .oci:
                    let wh = parent(p) + "/.wh." + String(p[p.index(after: p.lastIndex(of: "/")!)...])
                    guard creat(wh, 0o644) >= 0 else { throw FixtureError("creat", wh) }
                }
            case .opaque(let rel):
                let p = dir + "/" + rel
                try mkdirs(p)
                switch form {
                case .overlay: try setXattr(p, "user.overlay.opaque", "y")
                case .oci:
                    let marker = p + "/.wh..wh..opq"
                    guard creat(marker, 0o644) >= 0 else { throw FixtureError("creat", marker) }
                }
            case .rawOverlayXattr(let rel, let name, let value):
                try setXattr(dir + "/" + rel, "user.overlay." + name, value)
            }
        }
    }

    /// Sets every entry's times (the root's too) to `mtime`, after all writes.
    static func settle(_ dir: String) throws {
        var times = [mtime, mtime]
        if let walk = FileManager.default.enumerator(atPath: dir) {
            while let rel = walk.nextObject() as? String {
                guard utimensat(AT_FDCWD, dir + "/" + rel, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw FixtureError("utimensat", dir + "/" + rel)
                }
            }
        }
        guard utimensat(AT_FDCWD, dir, &times, 0) == 0 else { throw FixtureError("utimensat", dir) }
    }

    private static func parent(_ p: String) -> String { String(p[..<p.lastIndex(of: "/")!]) }

    private static func mkdirs(_ p: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: p, isDirectory: &isDir) { return }
        try mkdirs(parent(p))
        guard mkdir(p, 0o755) == 0 || errno == EEXIST else { throw FixtureError("mkdir", p) }
    }

    private static func setXattr(_ p: String, _ name: String, _ value: String) throws {
        let bytes = Array(value.utf8)
        let rc = bytes.withUnsafeBytes { lsetxattr(p, name, $0.baseAddress, $0.count, 0) }
        guard rc == 0 else { throw FixtureError("lsetxattr \(name)", p) }
    }
}

/// What a harness does for the table: POSIX-like calls by path relative to the merged root,
/// each returning 0 or the errno.
protocol EdgeCaseHarness {
    func write(_ path: String, _ content: String) -> Int32
    func open(_ path: String, flags: Int32) -> Int32
    func unlink(_ path: String) -> Int32
    func rmdir(_ path: String) -> Int32
    func mkdir(_ path: String) -> Int32
    func rename(_ from: String, _ to: String) -> Int32
    func link(_ from: String, _ to: String) -> Int32
    func chmod(_ path: String, _ mode: mode_t) -> Int32
    func setxattr(_ path: String, _ name: String, _ value: String) -> Int32
    func mknodWhiteout(_ path: String) -> Int32
    func stat(_ path: String) -> Result<stat, Errno>
    func read(_ path: String) -> Result<String, Errno>
    /// Names and d_ino of a directory's entries, without `.` and `..`.
    func list(_ path: String) -> Result<[(name: String, ino: UInt64)], Errno>
    func xattrNames(_ path: String) -> Result<[String], Errno>
    func getxattr(_ path: String, _ name: String) -> Result<[UInt8], Errno>
}

/// Runs table rows on harnesses; the outcome of each row is a list of problems (empty: passed).
enum EdgeCaseRunner {
    /// The layers of `row` written in `form` under `root`: lower paths (top first), and an upper
    /// and workdir holding what the row puts in the upper before.
    static func fixture(_ row: EdgeCase, form: FixtureForm, root: String) throws -> (lowers: [String], upper: String, work: String) {
        var lowers: [String] = []
        for (i, items) in row.lowers.enumerated() {
            let dir = root + "/lower\(i)"
            try FixtureForm.write(items, into: dir, form: form)
            try FixtureForm.settle(dir)
            lowers.append(dir)
        }
        let upper = root + "/upper", work = root + "/work"
        try FixtureForm.write(row.upperBefore, into: upper, form: .overlay)
        try FixtureForm.settle(upper)
        try FixtureForm.write([], into: work, form: .overlay)
        return (lowers, upper, work)
    }

    /// Does the steps of `row`; returns the errno of each (0: it succeeded) and the problems.
    static func act(_ row: EdgeCase, on h: EdgeCaseHarness) -> (outcomes: [Int32], problems: [String], noted: [String: UInt64]) {
        var outcomes: [Int32] = [], problems: [String] = [], noted: [String: UInt64] = [:]
        for step in row.steps {
            var wanted: Int32 = 0
            var s = step
            if case .fails(let inner, let e) = step { s = inner; wanted = e }
            let got: Int32
            switch s {
            case .write(let p, let c): got = h.write(p, c)
            case .open(let p, let f): got = h.open(p, flags: f)
            case .unlink(let p): got = h.unlink(p)
            case .rmdir(let p): got = h.rmdir(p)
            case .mkdir(let p): got = h.mkdir(p)
            case .rename(let a, let b): got = h.rename(a, b)
            case .link(let a, let b): got = h.link(a, b)
            case .chmod(let p, let m): got = h.chmod(p, m)
            case .setxattr(let p, let n, let v): got = h.setxattr(p, n, v)
            case .mknodWhiteout(let p): got = h.mknodWhiteout(p)
            case .noteInode(let p):
                switch h.stat(p) {
                case .success(let st): noted[p] = UInt64(st.st_ino); got = 0
                case .failure(let e): got = e.rawValue
                }
            case .fails: got = EINVAL  // a nested `fails` is a mistake in the table
            }
            outcomes.append(got)
            if got != wanted { problems.append("step \(step): \(text(got)), wanted \(text(wanted))") }
        }
        return (outcomes, problems, noted)
    }

    /// Checks the row's expectations through `h`.
    static func check(_ row: EdgeCase, on h: EdgeCaseHarness, noted: [String: UInt64]) -> [String] {
        var problems: [String] = []
        func fail(_ e: EdgeExpectation, _ why: String) { problems.append("\(e): \(why)") }
        for e in row.expect {
            switch e {
            case .absent(let p):
                if case .success = h.stat(p) { fail(e, "exists") }
                if case .failure(let err) = h.stat(p), err != .noSuchFileOrDirectory { fail(e, "\(err)") }
            case .error(let p, let wanted):
                switch h.stat(p) {
                case .success: fail(e, "exists")
                case .failure(let err): if err.rawValue != wanted { fail(e, "\(err)") }
                }
            case .content(let p, let c):
                switch h.read(p) {
                case .success(let got): if got != c { fail(e, "reads \"\(got)\"") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .names(let p, let names):
                switch h.list(p) {
                case .success(let got): if got.map(\.name).sorted() != names { fail(e, "lists \(got.map(\.name).sorted())") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .mode(let p, let m):
                switch h.stat(p) {
                case .success(let st): if st.st_mode & 0o7777 != m { fail(e, "mode \(String(st.st_mode & 0o7777, radix: 8))") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .fixtureMtime(let p):
                switch h.stat(p) {
                case .success(let st):
                    if st.st_mtim.tv_sec != FixtureForm.mtime.tv_sec || st.st_mtim.tv_nsec != FixtureForm.mtime.tv_nsec {
                        fail(e, "mtime \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)")
                    }
                case .failure(let err): fail(e, "\(err)")
                }
            case .nlink(let p, let n):
                switch h.stat(p) {
                case .success(let st): if UInt64(st.st_nlink) != n { fail(e, "nlink \(st.st_nlink)") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .sameFile(let a, let b):
                switch (h.stat(a), h.stat(b)) {
                case (.success(let x), .success(let y)): if x.st_ino != y.st_ino { fail(e, "st_ino \(x.st_ino) and \(y.st_ino)") }
                default: fail(e, "cannot stat both")
                }
            case .xattrs(let p, let names):
                switch h.xattrNames(p) {
                case .success(let got):
                    let user = got.filter { $0.hasPrefix("user.") }.sorted()
                    if user != names { fail(e, "lists \(user)") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .noXattr(let p, let name):
                switch h.getxattr(p, name) {
                case .success: fail(e, "readable")
                case .failure(let err): if err != .noData { fail(e, "\(err)") }
                }
            case .inodeAsNoted(let p):
                switch h.stat(p) {
                case .success(let st): if noted[p] != UInt64(st.st_ino) { fail(e, "st_ino \(st.st_ino), noted \(noted[p].map(String.init) ?? "none")") }
                case .failure(let err): fail(e, "\(err)")
                }
            case .direntInodes(let p):
                switch h.list(p) {
                case .success(let entries):
                    for entry in entries {
                        let child = p.isEmpty ? entry.name : p + "/" + entry.name
                        guard case .success(let st) = h.stat(child) else { fail(e, "cannot stat \(child)"); continue }
                        if UInt64(st.st_ino) != entry.ino { fail(e, "\(child): d_ino \(entry.ino), st_ino \(st.st_ino)") }
                    }
                case .failure(let err): fail(e, "\(err)")
                }
            }
        }
        return problems
    }

    /// Checks the upper dir `upper` written over `lowers`: the row's expectations, the kernel's
    /// form (docs/SEMANTICS.md §1), and the row's diff.
    static func checkUpper(_ row: EdgeCase, upper: String, lowers: [String]) -> [String] {
        var problems: [String] = []
        func lst(_ p: String) -> stat? { var st = Glibc.stat(); return lstat(upper + "/" + p, &st) == 0 ? st : nil }
        for e in row.upper {
            switch e {
            case .whiteout(let p):
                if let st = lst(p), st.st_mode & S_IFMT == S_IFCHR, st.st_rdev == 0 { continue }
                problems.append("upper \(e): no char 0:0 there")
            case .absent(let p):
                if lst(p) != nil { problems.append("upper \(e): exists") }
            case .file(let p):
                if lst(p).map({ $0.st_mode & S_IFMT == S_IFREG }) != true { problems.append("upper \(e): no regular file") }
            case .opaque(let p):
                var v = [UInt8](repeating: 0, count: 4)
                let n = lgetxattr(upper + "/" + p, "user.overlay.opaque", &v, v.count)
                if n != 1 || v[0] != 0x79 { problems.append("upper \(e): not opaque") }
            case .mode(let p, let m):
                if let st = lst(p), st.st_mode & 0o7777 == m { continue }
                problems.append("upper \(e): \(lst(p).map { String($0.st_mode & 0o7777, radix: 8) } ?? "missing")")
            }
        }
        do {
            problems += try UpperForm.problems(upper: upper, lowers: lowers, namespace: "user", userNames: row.upperNames)
                .map { "upper form: " + $0 }
        } catch { problems.append("upper form: \(error)") }
        if let diff = row.diff {
            do {
                let got = try UpperChanges(lowerdirs: lowers, upperdir: upper, xattrNamespace: .user).changes()
                    .map(\.description)
                if got != diff { problems.append("diff \(got), wanted \(diff)") }
            } catch { problems.append("diff: \(error)") }
        }
        return problems
    }

    static func text(_ e: Int32) -> String { e == 0 ? "ok" : "\(Errno(rawValue: e))" }
}
