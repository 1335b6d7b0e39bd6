import Glibc
import SystemPackage

/// The xattrs of a copied-up entry, of any type.
enum XattrCopy {
    /// Copies every xattr but the overlay's own (`rule`, the one `getxattr` and `listxattr`
    /// follow) from one path to another, each under the name it is stored under (escaped
    /// names stay escaped). Paths follow the last component: meant for `/proc/self/fd/N`.
    /// Names a filesystem refuses are skipped.
    static func copyAll(from src: UnsafePointer<CChar>, to dst: UnsafePointer<CChar>,
                        rule: OverlayXattrs) throws(Errno) {
        let need = (try? Sys.pathListxattr(src, UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
        guard need > 0 else { return }
        var list = [CChar](repeating: 0, count: need)
        let n = try Errno.lift { try list.withUnsafeMutableBytes { b in try Sys.pathListxattr(src, b) } }
        var start = 0
        while start < n {
            let end = list[start..<n].firstIndex(of: 0) ?? n
            try list.withUnsafeBufferPointer { (p) throws(Errno) in
                let name = p.baseAddress! + start
                if rule.isPrivate(stored: name) { return }
                let size = (try? Sys.pathGetxattr(src, name, UnsafeMutableRawBufferPointer(start: nil, count: 0))) ?? 0
                var value = [UInt8](repeating: 0, count: max(size, 1))
                guard let got = try? Errno.lift({ try value.withUnsafeMutableBytes { b in try Sys.pathGetxattr(src, name, b) } })
                else { return }
                try? value.withUnsafeBytes { b in
                    try Sys.pathSetxattr(dst, name, UnsafeRawBufferPointer(rebasing: b[0..<got]), 0)
                }
            }
            start = end + 1
        }
    }
}
