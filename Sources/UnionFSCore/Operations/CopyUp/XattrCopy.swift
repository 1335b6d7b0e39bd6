import Glibc
import SystemPackage

/// The xattrs of a copied-up entry: every xattr but the overlay's own (`rule`, the one
/// `getxattr` and `listxattr` follow), each under the name it is stored under (escaped names
/// stay escaped). Names a filesystem refuses are skipped.
enum XattrCopy {
    /// Between two open files or directories, by descriptor.
    static func copyAll(from src: borrowing Descriptor, to dst: borrowing Descriptor, rule: OverlayXattrs) throws(Errno) {
        let s = src.rawValue, d = dst.rawValue
        try copyAll(rule: rule,
                    list: { (b) throws(Errno) in try Sys.flistxattr(s, b) },
                    get: { (n, b) throws(Errno) in try Sys.fgetxattr(s, n, b) },
                    set: { (n, v) throws(Errno) in try Sys.fsetxattr(d, n, v, 0) })
    }

    /// Between two `O_PATH` descriptors (symlinks and special files, which have no readable
    /// descriptor), through their `/proc/self/fd` paths.
    static func copyAll(fromPath src: borrowing Descriptor, toPath dst: borrowing Descriptor, rule: OverlayXattrs) throws(Errno) {
        try withProcFDPath(src) { (s) throws(Errno) in
            try withProcFDPath(dst) { (d) throws(Errno) in
                try copyAll(rule: rule,
                            list: { (b) throws(Errno) in try Sys.pathListxattr(s, b) },
                            get: { (n, b) throws(Errno) in try Sys.pathGetxattr(s, n, b) },
                            set: { (n, v) throws(Errno) in try Sys.pathSetxattr(d, n, v, 0) })
            }
        }
    }

    private static func copyAll(rule: OverlayXattrs,
                                list: (UnsafeMutableRawBufferPointer) throws(Errno) -> Int,
                                get: (UnsafePointer<CChar>, UnsafeMutableRawBufferPointer) throws(Errno) -> Int,
                                set: (UnsafePointer<CChar>, UnsafeRawBufferPointer) throws(Errno) -> Void) throws(Errno) {
        let need = (try? list(UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
        guard need > 0 else { return }
        var names = [CChar](repeating: 0, count: need)
        let n = try Errno.lift { try names.withUnsafeMutableBytes { b in try list(b) } }
        names.withUnsafeBytes { b in
            for stored in XattrNameList(UnsafeRawBufferPointer(rebasing: b[0..<n])) where !stored.isEmpty {
                let name = stored.baseAddress!.assumingMemoryBound(to: CChar.self)
                if rule.isPrivate(stored: name) { continue }
                let size = (try? get(name, UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
                var value = [UInt8](repeating: 0, count: max(size, 1))
                guard let got = try? Errno.lift({ try value.withUnsafeMutableBytes { b in try get(name, b) } }) else { continue }
                _ = try? Errno.lift { try value.withUnsafeBytes { b in try set(name, UnsafeRawBufferPointer(rebasing: b[0..<got])) } }
            }
        }
    }
}
