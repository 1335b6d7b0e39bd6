import Glibc
import SystemPackage
import UnionFSCore

/// Extended attributes (see `Files.swift` for the rules every handler keeps).
extension FuseConnection {
    func getxattr(_ r: consuming Reply, node: NodeID, name: UnsafePointer<CChar>, size: Int) {
        do throws(Errno) { r.xattr(try fileSystem.getxattr(node, name: name, size: size)) } catch { r.error(error) }
    }

    func listxattr(_ r: consuming Reply, node: NodeID, size: Int) {
        do throws(Errno) { r.xattr(try fileSystem.listxattr(node, size: size)) } catch { r.error(error) }
    }

    func setxattr(_ r: consuming Reply, node: NodeID, name: UnsafePointer<CChar>, value: UnsafeRawBufferPointer, flags: Int32,
                  clearingSetGID: Bool = false) {
        r.ok { () throws(Errno) in
            try fileSystem.setxattr(node, name: name, value: value, flags: flags, clearingSetGID: clearingSetGID)
        }
    }

    func removexattr(_ r: consuming Reply, node: NodeID, name: UnsafePointer<CChar>) {
        r.ok { () throws(Errno) in try fileSystem.removexattr(node, name: name) }
    }
}
