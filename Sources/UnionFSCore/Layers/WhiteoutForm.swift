import Glibc
import SystemPackage

/// How the upper records a deleted name and an opaque directory.
///
/// The kernel's form is a 0:0 character device and the `<ns>.overlay.opaque` xattr. Making that
/// device needs `mknod`, which unprivileged users get only since Linux 5.8 and which seccomp
/// profiles (some container runtimes, CI sandboxes) may refuse. Where it is refused, the upper
/// keeps the OCI form instead, as fuse-overlayfs does: an empty `.wh.NAME` file per deleted
/// name and an empty `.wh..wh..opq` file in each opaque directory. Such an upper is read in the
/// same form (its `.wh.` names are markers, never files, and new names starting `.wh.` are
/// refused), `diff` and `commit` read it as they read fuse-overlayfs's uppers, and it is itself a
/// valid OCI layer directory. Kernel overlayfs cannot mount it (the kernel reads no `.wh.` files).
public enum WhiteoutForm: String, Sendable, Equatable {
    /// 0:0 character devices and the opaque xattr: the kernel's form.
    case chardev
    /// `.wh.NAME` and `.wh..wh..opq` files: the OCI layer form.
    case oci

    /// Chooses the form for an upper whose staging directory is `staging`: one `mknod` of a
    /// 0:0 character device there, removed at once. Returns the form and why, for `-d`.
    static func detect(in staging: LayerDir) -> (WhiteoutForm, String) {
        let probe = try! Name("#whiteout-probe-\(getpid())")
        do {
            try probe.withCString { (p) throws(Errno) in
                try Sys.mknodat(staging.fd, p, S_IFCHR, 0)
                try? Sys.unlinkat(staging.fd, p, 0)
            }
            return (.chardev, "chosen: mknod of a 0:0 character device works in the workdir")
        } catch {
            return (.oci, "chosen: mknod of a 0:0 character device in the workdir failed: \(error)")
        }
    }
}

/// The marker files of an upper that keeps the OCI form.
package enum OCIMarkers {
    /// Calls `body` with `.wh.<name>`; `ENAMETOOLONG` when that exceeds `NAME_MAX`.
    static func withWhiteoutName<R>(_ name: borrowing FileName,
                                    _ body: (borrowing FileName) throws(Errno) -> R) throws(Errno) -> R {
        guard let r = try name.withPrefix(".wh.", body) else { throw .fileNameTooLong }
        return r
    }

    /// Creates the empty marker file `name` in `dir`; one that exists already is kept.
    static func create(_ name: borrowing FileName, in dir: LayerDir) throws(Errno) {
        do {
            let fd = try Sys.openat(dir.fd, name.cString, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            Sys.close(fd)
        } catch .fileExists {}
    }

    /// Removes the marker file `name` in `dir` if there is one.
    static func remove(_ name: borrowing FileName, in dir: LayerDir) throws(Errno) {
        do { try Sys.unlinkat(dir.fd, name.cString, 0) } catch .noSuchFileOrDirectory {}
    }
}
