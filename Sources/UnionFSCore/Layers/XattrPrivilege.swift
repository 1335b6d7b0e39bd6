import Glibc

extension XattrNamespace {
    /// The namespace this process can write, decided as the kernel decides who may set
    /// `trusted.*`: CAP_SYS_ADMIN in the initial user namespace. Anything else (any user
    /// namespace, a plain user, root without CAP_SYS_ADMIN in an unprivileged container) gets
    /// `user`, as the kernel's overlayfs must be told with `userxattr` there. A `trusted.*` write
    /// without the capability fails with EPERM, so the upper would refuse every mkdir.
    public static var forThisProcess: XattrNamespace {
        Privilege.current.canWriteTrustedXattrs ? .trusted : .user
    }
}

/// What this process may do with the overlay's private markers, read once from /proc.
public struct Privilege: Sendable, Equatable, CustomStringConvertible {
    /// The process's user namespace is the initial one (`/proc/self/uid_map` maps every id).
    public var initialUserNamespace: Bool
    /// CAP_SYS_ADMIN is in the effective set.
    public var sysAdmin: Bool

    public var canWriteTrustedXattrs: Bool { initialUserNamespace && sysAdmin }

    public var description: String {
        if canWriteTrustedXattrs { return "CAP_SYS_ADMIN in the initial user namespace" }
        if !initialUserNamespace { return "inside a user namespace" }
        return "without CAP_SYS_ADMIN"
    }

    public static var current: Privilege {
        let map = readSmallFile("/proc/self/uid_map") ?? ""
        let fields = map.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        let initial = fields.count == 3 && fields[0] == "0" && fields[1] == "0" && fields[2] == "4294967295"
        var admin = false
        for line in (readSmallFile("/proc/self/status") ?? "").split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingCharacters(inSet: " \t")
            if let caps = UInt64(hex, radix: 16) { admin = caps & (1 << 21) != 0 }  // CAP_SYS_ADMIN
        }
        return Privilege(initialUserNamespace: initial, sysAdmin: admin)
    }

    /// A procfs file's text (they are small; one read of 64 KiB is enough).
    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { return nil }
        return String(decoding: buf[..<n], as: UTF8.self)
    }
}

private extension Substring {
    func trimmingCharacters(inSet set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return s
    }
}
