import Glibc
import SystemPackage
import UnionFSCore

/// A caller's supplementary groups, which FUSE does not send: read from the `Groups:` line of
/// `/proc/PID/task/PID/status` (as libfuse's `fuse_req_getgroups` does). Empty when the process
/// is gone or the file cannot be read: a permission check then sees only the caller's own gid.
enum SupplementaryGroups {
    static func of(_ pid: pid_t) -> [gid_t] {
        guard pid > 0 else { return [] }
        let fd: Int32
        do throws(Errno) { fd = try Sys.openat(AT_FDCWD, "/proc/\(pid)/task/\(pid)/status", O_RDONLY) } catch { return [] }
        defer { Sys.close(fd) }
        var text = [UInt8](repeating: 0, count: 8192)
        var used = 0
        while used < text.count {
            let n = (try? text.withUnsafeMutableBytes { b throws(Errno) in
                try Sys.read(fd, UnsafeMutableRawBufferPointer(rebasing: b[used...]))
            }) ?? 0
            if n <= 0 { break }
            used += n
        }
        return parse(text[0..<used])
    }

    /// The numbers of the `Groups:` line of a status file.
    static func parse(_ status: ArraySlice<UInt8>) -> [gid_t] {
        let key = Array("\nGroups:".utf8)
        var i = status.startIndex
        while i + key.count <= status.endIndex {
            if status[i..<(i + key.count)].elementsEqual(key) { break }
            i += 1
        }
        guard i + key.count <= status.endIndex else { return [] }
        var groups: [gid_t] = []
        var value: gid_t = 0, inNumber = false
        for c in status[(i + key.count)...] {
            if c >= 48 && c <= 57 {
                value = value &* 10 &+ gid_t(c - 48)
                inNumber = true
            } else {
                if inNumber { groups.append(value) }
                value = 0; inNumber = false
                if c == 10 { break }
            }
        }
        return groups
    }
}
