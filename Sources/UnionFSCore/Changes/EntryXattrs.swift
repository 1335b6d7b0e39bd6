import Glibc
import SystemPackage

/// Reads the xattrs of any entry in a layer directory, symlinks and devices included.
///
/// The entry is opened `O_PATH | O_NOFOLLOW` and reached through its `/proc/self/fd` path, the
/// one way glibc offers to read xattrs of a symlink by descriptor. Diff needs one value
/// (`security.capability`); commit needs them all.
package enum EntryXattrs {
    /// The value of `xattr` on `name` in `dir`, or nil when it is not set (or cannot be read).
    static func value(in dir: LayerDir, _ name: borrowing FileName, _ xattr: UnsafePointer<CChar>) -> [UInt8]? {
        guard let fd = try? dir.openFile(name, O_PATH) else { return nil }
        return try? withProcFDPath(fd) { (path) throws(Errno) -> [UInt8] in try read(path, xattr) }
    }

    /// Every xattr of `name` in `dir` as (name, value), sorted by name, leaving out the ones
    /// `keep` refuses. Names a filesystem lists but will not read are skipped.
    package static func all(in dir: LayerDir, _ name: borrowing FileName,
                    keep: (String) -> Bool) throws(Errno) -> [(String, [UInt8])] {
        return try all(at: try dir.openFile(name, O_PATH), keep: keep)
    }

    /// Every xattr of the directory `dir` itself, as `all(in:_:keep:)` reads an entry's.
    package static func all(of dir: LayerDir, keep: (String) -> Bool) throws(Errno) -> [(String, [UInt8])] {
        try all(at: dir.descriptor, keep: keep)
    }

    private static func all(at fd: borrowing Descriptor, keep: (String) -> Bool) throws(Errno) -> [(String, [UInt8])] {
        try withProcFDPath(fd) { (path) throws(Errno) -> [(String, [UInt8])] in
            let need = try Sys.pathListxattr(path, UnsafeMutableRawBufferPointer(start: nil, count: 0))
            guard need > 0 else { return [] }
            var list = [UInt8](repeating: 0, count: need)
            let n = try Errno.lift { try list.withUnsafeMutableBytes { b in try Sys.pathListxattr(path, b) } }
            var out: [(String, [UInt8])] = []
            for raw in list[0..<n].split(separator: 0) {
                let xname = String(decoding: raw, as: UTF8.self)
                guard keep(xname), let v = try? read(path, xname) else { continue }
                out.append((xname, v))
            }
            return out.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
        }
    }

    private static func read(_ path: UnsafePointer<CChar>, _ xattr: UnsafePointer<CChar>) throws(Errno) -> [UInt8] {
        while true {
            let size = try Sys.pathGetxattr(path, xattr, UnsafeMutableRawBufferPointer(start: nil, count: 0))
            var value = [UInt8](repeating: 0, count: max(size, 1))
            do {
                let n = try Errno.lift { try value.withUnsafeMutableBytes { b in try Sys.pathGetxattr(path, xattr, b) } }
                return Array(value[0..<n])
            } catch .outOfRange {
                continue  // grew between the two calls
            }
        }
    }

    /// True for the overlay's private xattrs in either namespace, fuse-overlayfs's own
    /// (`user.fuseoverlayfs.*`) and the owner record of a store unpacked without root
    /// (`user.containers.override_stat`): they describe how one tree is stored, never a file's
    /// content (mounts hide them too).
    package static func isPrivate(_ name: String) -> Bool {
        name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.")
            || name.hasPrefix("user.fuseoverlayfs.") || name == OwnerRecords.xattrName
    }
}
