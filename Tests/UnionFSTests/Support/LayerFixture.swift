import CAttr
import Foundation
import Glibc
import XCTest

/// Errors from fixture building: the system call and path that failed.
struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ call: String, _ path: String, _ e: Int32 = errno) {
        description = "\(call)(\(path)): \(String(cString: strerror(e)))"
    }
}

/// Builds layer directories under a root (one subdirectory per layer), with every on-disk form
/// the overlay format knows: files, dirs, symlinks, char 0:0 whiteouts, opaque xattrs with any
/// value, `<ns>.overlay.whiteout` xattr whiteouts, OCI `.wh.NAME` / `.wh..wh..opq`, user
/// xattrs, modes and owners. Parents are created as needed with mode 0755.
final class LayerFixture {
    let root: String
    private(set) var layerNames: [String] = []

    init(root: String) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// The layer named `name` (created on first use, mode 0755).
    func layer(_ name: String) throws -> Layer {
        let path = root + "/" + name
        if !layerNames.contains(name) {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            chmod(path, 0o755)
            layerNames.append(name)
        }
        return Layer(path: path)
    }

    func path(_ layer: String) -> String { root + "/" + layer }

    /// One layer directory.
    struct Layer {
        let path: String

        func abs(_ rel: String) -> String { rel.isEmpty || rel == "/" ? path : path + "/" + rel }

        /// Makes the parent directories of `rel` (mode 0755) when missing.
        func parents(_ rel: String) throws {
            let full = abs(rel)
            let parent = String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)])
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDir) {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            }
        }

        /// A regular file with `content`, mode, owner and user xattrs.
        @discardableResult
        func file(_ rel: String, _ content: String = "", mode: mode_t = 0o644, uid: uid_t = 0, gid: gid_t = 0,
                  xattrs: [String: String] = [:]) throws -> Layer {
            try fileBytes(rel, Array(content.utf8), mode: mode, uid: uid, gid: gid, xattrs: xattrs)
        }

        @discardableResult
        func fileBytes(_ rel: String, _ bytes: [UInt8], mode: mode_t = 0o644, uid: uid_t = 0, gid: gid_t = 0,
                       xattrs: [String: String] = [:]) throws -> Layer {
            try parents(rel)
            let p = abs(rel)
            let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw FixtureError("open", p) }
            defer { close(fd) }
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { throw FixtureError("write", p) }
                off += n
            }
            try own(p, uid: uid, gid: gid)
            try setMode(p, mode)
            for (k, v) in xattrs { try setXattr(rel, k, v) }
            return self
        }

        /// A directory (mode, owner, opaque xattr value if any, user xattrs). An existing dir is kept
        /// and only gets the attributes.
        @discardableResult
        func dir(_ rel: String, mode: mode_t = 0o755, uid: uid_t = 0, gid: gid_t = 0,
                 opaque: String? = nil, xattrs: [String: String] = [:]) throws -> Layer {
            let p = abs(rel)
            if !rel.isEmpty && rel != "/" {
                try parents(rel)
                if mkdir(p, 0o700) != 0 && errno != EEXIST { throw FixtureError("mkdir", p) }
            }
            try own(p, uid: uid, gid: gid)
            try setMode(p, mode)
            if let opaque { try setXattr(rel, "trusted.overlay.opaque", opaque) }
            for (k, v) in xattrs { try setXattr(rel, k, v) }
            return self
        }

        @discardableResult
        func symlink(_ rel: String, to target: String, uid: uid_t = 0, gid: gid_t = 0) throws -> Layer {
            try parents(rel)
            let p = abs(rel)
            guard Glibc.symlink(target, p) == 0 else { throw FixtureError("symlink", p) }
            guard lchown(p, uid, gid) == 0 else { throw FixtureError("lchown", p) }
            return self
        }

        /// The kernel's whiteout: a character device 0:0.
        @discardableResult
        func whiteout(_ rel: String) throws -> Layer {
            try parents(rel)
            let p = abs(rel)
            guard mknod(p, S_IFCHR | 0o000, 0) == 0 else { throw FixtureError("mknod", p) }
            return self
        }

        /// A zero-size regular file carrying `trusted.overlay.whiteout` (lower layers only).
        @discardableResult
        func xattrWhiteout(_ rel: String) throws -> Layer {
            try file(rel, "", mode: 0o644)
            try setXattr(rel, "trusted.overlay.whiteout", "y")
            return self
        }

        /// The OCI/AUFS whiteout `.wh.NAME` for `rel` (an empty regular file next to it).
        @discardableResult
        func ociWhiteout(_ rel: String) throws -> Layer {
            guard let slash = rel.lastIndex(of: "/") else { return try file(".wh." + rel, "") }
            return try file(rel[..<slash] + "/.wh." + rel[rel.index(after: slash)...], "")
        }

        /// The OCI/AUFS opaque marker `DIR/.wh..wh..opq` (the dir is created if missing).
        @discardableResult
        func ociOpaque(_ dirRel: String) throws -> Layer {
            try dir(dirRel)
            return try file(dirRel.isEmpty ? ".wh..wh..opq" : dirRel + "/.wh..wh..opq", "")
        }

        /// Sets an xattr on `rel` without following a symlink.
        @discardableResult
        func setXattr(_ rel: String, _ name: String, _ value: String) throws -> Layer {
            let p = abs(rel)
            let bytes = Array(value.utf8)
            let rc = bytes.withUnsafeBytes { lsetxattr(p, name, $0.baseAddress, $0.count, 0) }
            guard rc == 0 else { throw FixtureError("lsetxattr \(name)", p) }
            return self
        }

        private func own(_ p: String, uid: uid_t, gid: gid_t) throws {
            guard lchown(p, uid, gid) == 0 else { throw FixtureError("lchown", p) }
        }

        private func setMode(_ p: String, _ mode: mode_t) throws {
            guard chmod(p, mode) == 0 else { throw FixtureError("chmod", p) }
        }
    }
}
