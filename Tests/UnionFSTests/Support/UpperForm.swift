import Foundation
import Glibc
import UnionFS

/// Checks an upper dir against what docs/SEMANTICS.md §1 says this project must never write:
/// `.wh.` files, whiteouts other than char 0:0, whiteouts inside opaque or pure-upper dirs (or
/// where no lower layer shows the name), opaque values other than "y", and any other private
/// overlay xattr (`redirect`, `origin`, `metacopy`, `impure`, ...), in either namespace.
enum UpperForm {
    /// One line per problem found; empty when the upper is in the kernel's form.
    /// `lowers` are the lower dirs (top first) the upper was written over; `userNames` are
    /// `.wh.` names a test created on purpose through the mount (plain files then).
    static func problems(upper: String, lowers: [String], namespace: String = "trusted",
                         userNames: Set<String> = []) throws -> [String] {
        let lowerView = try UnionView(LayerStackConfiguration(lowerdirs: lowers,
                                                               xattrNamespace: namespace == "user" ? .user : .trusted))
        var out: [String] = []
        try walk(upper, rel: "", insideOpaque: false, lowerView: lowerView, namespace: namespace,
                 userNames: userNames, into: &out)
        return out
    }

    private static func walk(_ abs: String, rel: String, insideOpaque: Bool, lowerView: UnionView,
                             namespace: String, userNames: Set<String>, into out: inout [String]) throws {
        let shown = "/" + rel
        let opaque = try privateXattrs(abs, rel: shown, namespace: namespace, into: &out)
        let below = insideOpaque || opaque
        let names = try FileManager.default.contentsOfDirectory(atPath: abs).sorted()
        for name in names {
            let childAbs = abs + "/" + name
            let childRel = rel.isEmpty ? name : rel + "/" + name
            var st = stat()
            guard lstat(childAbs, &st) == 0 else { out.append("lstat /\(childRel) failed"); continue }
            if name.hasPrefix(".wh.") && !userNames.contains(childRel) {
                out.append("OCI marker written into the upper: /\(childRel)")
            }
            let type = st.st_mode & S_IFMT
            if type == S_IFCHR && st.st_rdev == 0 {
                if below {
                    out.append("whiteout inside an opaque dir: /\(childRel)")
                } else if (try? lowerView.stat(rel)).map({ $0.st_mode & S_IFMT == S_IFDIR }) != true {
                    out.append("whiteout inside a pure-upper dir: /\(childRel)")
                } else if (try? lowerView.stat(childRel)) == nil {
                    out.append("whiteout hiding nothing: /\(childRel)")
                }
                _ = try privateXattrs(childAbs, rel: "/" + childRel, namespace: namespace, into: &out)
                continue
            }
            if type == S_IFDIR {
                try walk(childAbs, rel: childRel, insideOpaque: below, lowerView: lowerView,
                         namespace: namespace, userNames: userNames, into: &out)
            } else {
                _ = try privateXattrs(childAbs, rel: "/" + childRel, namespace: namespace, into: &out)
            }
        }
    }

    /// Reports private overlay xattrs other than a well-formed opaque marker; true when `path`
    /// carries `<namespace>.overlay.opaque=y`. An escaped `<namespace>.overlay.overlay.*` (set
    /// through the mount, or copied up) is a file's own xattr, as for the kernel; so is the
    /// other namespace's `overlay.*` but its `opaque` and `whiteout` markers.
    private static func privateXattrs(_ path: String, rel: String, namespace: String,
                                      into out: inout [String]) throws -> Bool {
        var opaque = false
        let other = namespace == "trusted" ? "user" : "trusted"
        for name in try TreeSnapshot.xattrNames(path)
        where name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.") {
            if name.hasPrefix(namespace + ".overlay.overlay.") { continue }
            if name.hasPrefix(other + ".overlay.") && name != other + ".overlay.opaque" && name != other + ".overlay.whiteout" {
                continue
            }
            if name == namespace + ".overlay.opaque" {
                let v = try TreeSnapshot.xattrValue(path, name)
                if v == [0x79] { opaque = true } else { out.append("opaque value \(v) on \(rel)") }
            } else {
                out.append("private xattr \(name) on \(rel)")
            }
        }
        return opaque
    }

    /// True when `path` is the kernel's whiteout (char device 0:0).
    static func isWhiteout(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0
    }

    /// The value of `<namespace>.overlay.opaque` on `path`, nil when it has none.
    static func opaqueValue(_ path: String, namespace: String = "trusted") -> String? {
        (try? TreeSnapshot.xattrValue(path, namespace + ".overlay.opaque")).map { String(decoding: $0, as: UTF8.self) }
    }
}
