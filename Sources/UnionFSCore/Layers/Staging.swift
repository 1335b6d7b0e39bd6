import Glibc
import Synchronization
import SystemPackage

/// The workdir's staging area, where copy-ups, whiteouts and opaque directories are built under
/// temporary names before one `rename` lands them in the upper. A crash leaves junk only here,
/// and `prepare` clears that junk at mount.
package enum Staging {
    /// Creates (if needed) and opens `workdir/work`, removing everything a previous run left.
    static func prepare(in workdir: LayerDir) throws(Errno) -> LayerDir {
        let work = FileName("work")
        do { try Sys.mkdirat(workdir.fd, work.cString, 0o700) } catch .fileExists {}
        let dir = try workdir.openChild(work)
        try removeContents(of: dir)
        return dir
    }

    /// Removes every entry below `dir`, never following a symlink.
    package static func removeContents(of dir: LayerDir) throws(Errno) {
        var names: [Name] = []
        try Sys.forEachEntry(in: dir.fd) { e in names.append(Name(bytes: e.name)) }
        for name in names {
            try name.withFileName { (n) throws(Errno) in try removeTree(in: dir, n) }
        }
    }

    /// Removes `name` in `dir` and, if it is a directory, everything below it.
    package static func removeTree(in dir: LayerDir, _ name: borrowing FileName) throws(Errno) {
        let st = try dir.stat(name)
        if st.st_mode & S_IFMT == S_IFDIR {
            let child = try dir.openChild(name)
            try removeContents(of: child)
            try Sys.unlinkat(dir.fd, name.cString, AT_REMOVEDIR)
        } else {
            try Sys.unlinkat(dir.fd, name.cString, 0)
        }
    }

    private static let counter = Atomic<UInt64>(0)

    /// Calls `body` with a name unique within this process's staging directory, `#<pid>-<n>`,
    /// built in a stack buffer (no allocation).
    @inline(__always)
    static func withTemporaryName<R: ~Copyable>(_ body: (borrowing FileName) throws(Errno) -> R) throws(Errno) -> R {
        let n = counter.add(1, ordering: .relaxed).newValue
        return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 48) { (buf) throws(Errno) -> R in
            let p = buf.baseAddress!
            p[0] = 0x23  // "#"
            var used = 1
            used += writeDecimal(UInt64(getpid()), to: p + used)
            p[used] = 0x2d  // "-"
            used += 1
            used += writeDecimal(n, to: p + used)
            p[used] = 0
            return try body(FileName(unchecked: p, count: used))
        }
    }

    /// Writes `v` in decimal at `p`; returns the number of digits.
    private static func writeDecimal(_ v: UInt64, to p: UnsafeMutablePointer<CChar>) -> Int {
        var width = 1, rest = v
        while rest >= 10 { rest /= 10; width += 1 }
        rest = v
        for i in stride(from: width - 1, through: 0, by: -1) { p[i] = CChar(48 + rest % 10); rest /= 10 }
        return width
    }
}
