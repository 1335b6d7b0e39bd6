import Glibc
import SystemPackage

/// An answer to getxattr/listxattr: either the size the caller asked for, or the bytes.
public enum XattrAnswer: Equatable, Sendable {
    case size(Int)
    case data([UInt8])
}

extension UnionFileSystem {
    /// The directory carries a default POSIX ACL (what new entries in it inherit). Asked at
    /// every create; the answer "none" is kept on the node until a setxattr, so only the first
    /// create in a directory pays for the look.
    public func hasDefaultACL(_ id: NodeID) -> Bool {
        guard let n = try? node(id) else { return false }
        let (known, changes) = n.state.withLock { ($0.flags.contains(.noDefaultACL), $0.xattrChanges) }
        if known { return false }
        do {
            _ = try getxattr(id, name: "system.posix_acl_default", size: 0)
            return true
        } catch {
            if error == .noData {
                n.state.withLock { s in if s.xattrChanges == changes { s.flags.insert(.noDefaultACL) } }
            }
            return false
        }
    }

    /// `getxattr`. The overlay's own xattrs do not exist on the mount, and `<ns>.overlay.X` is
    /// read from its escaped form (`OverlayXattrs`). Most files have no xattrs at all, known
    /// after the first look without a syscall.
    public func getxattr(_ id: NodeID, name: UnsafePointer<CChar>, size: Int) throws(Errno) -> XattrAnswer {
        if Self.isOwnerOverride(name) { throw .noData }
        if options.noACL && strncmp(name, "system.posix_acl_", 17) == 0 { throw .notSupported }
        let n = try node(id)
        if n.state.withLock({ $0.flags.contains(.hasNoXattrs) }) { throw .noData }
        let (listed, changes) = n.state.withLock { ($0.flags.contains(.xattrsListed), $0.xattrChanges) }
        if !listed {
            // The kernel asks each file for `security.selinux`, ACLs and `security.capability`;
            // most files have no xattrs at all. Find out in one call.
            let none = try? n.withTopEntry { (dir, name) throws(Errno) -> Bool in
                let empty = UnsafeMutableRawBufferPointer(start: nil, count: 0)
                switch name {
                case .some(let name): return try dir.entryXattrList(name, empty) == 0
                case .none: return try Sys.flistxattr(dir.fd, empty) == 0
                }
            }
            n.state.withLock { s in
                s.flags.insert(.xattrsListed)
                if none == true && s.xattrChanges == changes { s.flags.insert(.hasNoXattrs) }
            }
            if none == true { throw .noData }
        }
        return try withXattrPath(id) { (path) throws(Errno) -> XattrAnswer in
            do throws(Errno) {
                return try read(path)
            } catch .noData {
                if (try? Sys.pathListxattr(path, UnsafeMutableRawBufferPointer(start: nil, count: 0))) == 0 {
                    n.state.withLock { s in if s.xattrChanges == changes { s.flags.insert(.hasNoXattrs) } }
                }
                throw .noData
            }
        }
        func read(_ path: UnsafePointer<CChar>) throws(Errno) -> XattrAnswer {
            try stack.overlayXattrs.withStoredName(name, forWriting: false) { (stored) throws(Errno) -> XattrAnswer in
                if size == 0 {
                    return .size(try Sys.pathGetxattr(path, stored, UnsafeMutableRawBufferPointer(start: nil, count: 0)))
                }
                var buf = [UInt8](repeating: 0, count: size)
                let n = try Errno.lift { try buf.withUnsafeMutableBytes { b in try Sys.pathGetxattr(path, stored, b) } }
                buf.removeLast(size - n)
                return .data(buf)
            }
        }
    }

    /// `listxattr`: the stored names as the mount shows them (`OverlayXattrs`), without the
    /// overlay's own.
    public func listxattr(_ id: NodeID, size: Int) throws(Errno) -> XattrAnswer {
        let list = try withXattrPath(id) { (path) throws(Errno) -> [UInt8] in
            while true {
                let need = try Sys.pathListxattr(path, UnsafeMutableRawBufferPointer(start: nil, count: 0))
                if need == 0 { return [] }
                var buf = [UInt8](repeating: 0, count: need)
                let n: Int
                do throws(Errno) {
                    n = try Errno.lift { try buf.withUnsafeMutableBytes { b in try Sys.pathListxattr(path, b) } }
                } catch .outOfRange {
                    continue  // grew meanwhile
                }
                buf.removeLast(need - n)
                return buf
            }
        }
        let filtered = shownNames(list)
        if size == 0 { return .size(filtered.count) }
        guard filtered.count <= size else { throw .outOfRange }
        return .data(filtered)
    }

    /// A NUL-separated list of stored xattr names as the mount shows it: private names and
    /// owner overrides dropped, escaped names shown as what they stand for.
    func shownNames(_ list: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(list.count)
        list.withUnsafeBytes { b in
            for name in XattrNameList(b) {
                guard !Self.isOwnerOverride(name), let shown = stack.overlayXattrs.shown(stored: name) else { continue }
                out.append(contentsOf: shown)
                out.append(0)
            }
        }
        return out
    }

    /// `user.containers.override_stat` and `user.fuseoverlayfs.override_stat`, where rootless
    /// layers keep owner and mode (`xattr_permissions`): they describe the file as stored, not
    /// as shown, so the mount hides them (fuse-overlayfs does too); copy-up keeps them.
    static func isOwnerOverride(_ name: UnsafeRawBufferPointer) -> Bool {
        name.elementsEqual("user.containers.override_stat".utf8) || name.elementsEqual("user.fuseoverlayfs.override_stat".utf8)
    }

    static func isOwnerOverride(_ name: UnsafePointer<CChar>) -> Bool {
        isOwnerOverride(UnsafeRawBufferPointer(start: name, count: strlen(name)))
    }

    /// Runs `body` with a path that reaches the node's topmost entry itself (`/proc/self/fd/N` of
    /// an `O_PATH` descriptor), so that xattr calls work on symlinks and special files too.
    func withXattrPath<R>(_ id: NodeID, _ body: (UnsafePointer<CChar>) throws(Errno) -> R) throws(Errno) -> R {
        let n = try node(id)
        if !n.isDirectory && n.isInUpper(stack) {
            let own = try ownFile(n)  // the node's own file, not what has its name now
            return try withProcFDPath(own.descriptor, body)
        }
        return try n.withTopEntry { (dir, name) throws(Errno) -> R in
            switch name {
            case .some(let name):
                return try withProcFDPath(try dir.openFile(name, O_PATH), body)
            case .none:
                return try withProcFDPath(dir.descriptor, body)
            }
        }
    }
}
