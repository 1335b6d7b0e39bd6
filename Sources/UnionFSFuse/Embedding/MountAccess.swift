import Glibc
import UnionFSCore

/// What a mount needs from the machine before libfuse is asked for it, checked so that each
/// problem a user without root meets gets one line that says what to do (libfuse's own
/// messages, such as "fuse: device not found, try 'modprobe fuse' first" for a device that
/// exists but is mode 0600, send users the wrong way).
///
/// How libfuse mounts: with CAP_SYS_ADMIN in the caller's user namespace (root, or root of a
/// user namespace as in `podman unshare`) it calls mount(2) itself; otherwise it runs the
/// setuid helper `fusermount3`, which reads `/etc/fuse.conf`.
public enum MountAccess {
    /// The helper libfuse 3 runs for a caller without CAP_SYS_ADMIN: its build-time directory
    /// first, then `PATH`.
    static let fusermount = "fusermount3"
    static let fusermountDirectory = "/usr/bin"

    /// Checks the device, the helper and `allow_other` for a mount with `fuseOptions`.
    public static func check(fuseOptions: [String], device: String = "/dev/fuse") throws(ConfigurationError) {
        try checkDevice(device)
        guard !Privilege.current.sysAdmin else { return }
        guard fusermountPath() != nil else {
            throw ConfigurationError("\(fusermount) not found (in \(fusermountDirectory) or PATH): a user without "
                + "CAP_SYS_ADMIN mounts FUSE through it; install the fuse3 package (apt-get install fuse3)")
        }
        if fuseOptions.contains("allow_other") && !userAllowOther() {
            throw ConfigurationError("option allow_other: \(fusermount) refuses it for uid \(getuid()) unless "
                + "/etc/fuse.conf has the line 'user_allow_other' (add it as root), or leave allow_other out")
        }
    }

    /// `/dev/fuse` readable and writable by this process, with the fix for each way it is not.
    public static func checkDevice(_ device: String) throws(ConfigurationError) {
        if access(device, R_OK | W_OK) == 0 { return }
        let e = errno
        var st = stat()
        guard e != ENOENT, stat(device, &st) == 0 else {
            throw ConfigurationError("\(device) does not exist: load the fuse module on the host (modprobe fuse), "
                + "or in a container pass the device in (podman/docker run --device /dev/fuse)")
        }
        if e == EACCES || e == EPERM {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw ConfigurationError("\(device) is not readable and writable by uid \(geteuid()) (mode 0\(mode), "
                + "owner \(st.st_uid):\(st.st_gid)): as root run 'chmod 0666 \(device)' (the mode Debian's "
                + "udev rule gives it, safe: fusermount3 decides who may mount), or mount as root")
        }
        throw ConfigurationError("\(device): \(String(cString: strerror(e)))")
    }

    /// The fusermount3 libfuse would run, or nil.
    static func fusermountPath() -> String? {
        var dirs = [fusermountDirectory]
        if let path = getenv("PATH") { dirs += String(cString: path).split(separator: ":").map(String.init) }
        for d in dirs where !d.isEmpty {
            let p = d + "/" + fusermount
            var st = stat()
            if stat(p, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    /// True when `/etc/fuse.conf` has an uncommented `user_allow_other` line.
    static func userAllowOther(conf: String = "/etc/fuse.conf") -> Bool {
        guard let f = fopen(conf, "r") else { return false }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let trimmed = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) == ["user_allow_other"] {
                return true
            }
        }
        return false
    }
}
