import Glibc
import SystemPackage

/// The kernel's permission rule for one file (owner, group, other; root may do anything but
/// execute a file with no execute bit).
enum Permissions {
    static func check(_ st: stat, mask: Int32, uid: uid_t, gid: gid_t, groups: [gid_t]) throws(Errno) {
        let mode = st.st_mode
        if uid == 0 {
            if mask & X_OK != 0 && mode & S_IFMT != S_IFDIR && mode & 0o111 == 0 {
                throw .permissionDenied
            }
            return
        }
        let bits: mode_t
        if st.st_uid == uid {
            bits = (mode >> 6) & 7
        } else if st.st_gid == gid || groups.contains(st.st_gid) {
            bits = (mode >> 3) & 7
        } else {
            bits = mode & 7
        }
        if mask & R_OK != 0 && bits & 4 == 0 { throw .permissionDenied }
        if mask & W_OK != 0 && bits & 2 == 0 { throw .permissionDenied }
        if mask & X_OK != 0 && bits & 1 == 0 { throw .permissionDenied }
    }
}
