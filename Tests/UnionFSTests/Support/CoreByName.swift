import Glibc
import SystemPackage
import UnionFSCore

/// The core's name-taking operations with Swift strings, for tests that drive a
/// `UnionFileSystem` in process: each name is validated as the bridge validates the kernel's
/// (`FileName.validating`), then handed to the operation borrowed.
extension UnionFileSystem {
    func lookup(parent: NodeID, name: String) throws(Errno) -> NodeEntry {
        try FileName.validating(name) { (n) throws(Errno) in try lookup(parent: parent, name: n) }
    }

    func create(parent: NodeID, name: String, mode: mode_t, flags: Int32, caller: Caller) throws(Errno) -> CreatedFile {
        try FileName.validating(name) { (n) throws(Errno) in
            try create(parent: parent, name: n, mode: mode, flags: flags, caller: caller)
        }
    }

    func mkdir(parent: NodeID, name: String, mode: mode_t, caller: Caller) throws(Errno) -> NodeEntry {
        try FileName.validating(name) { (n) throws(Errno) in try mkdir(parent: parent, name: n, mode: mode, caller: caller) }
    }

    func link(_ id: NodeID, newParent: NodeID, newName: String) throws(Errno) -> NodeEntry {
        try FileName.validating(newName) { (n) throws(Errno) in try link(id, newParent: newParent, newName: n) }
    }

    func unlink(parent: NodeID, name: String) throws(Errno) {
        try FileName.validating(name) { (n) throws(Errno) in try unlink(parent: parent, name: n) }
    }

    func rmdir(parent: NodeID, name: String) throws(Errno) {
        try FileName.validating(name) { (n) throws(Errno) in try rmdir(parent: parent, name: n) }
    }

    func rename(parent: NodeID, name: String, newParent: NodeID, newName: String, flags: UInt32) throws(Errno) {
        try FileName.validating(name) { (from) throws(Errno) in
            try FileName.validating(newName) { (to) throws(Errno) in
                try rename(parent: parent, name: from, newParent: newParent, newName: to, flags: flags)
            }
        }
    }
}
