import ArgumentParser
import Glibc
import UnionFS

/// `unionfs-swift stats MOUNTPOINT`: the request counts, latency percentiles and data bytes of
/// the daemon serving a mount.
///
/// The daemon is found by its command line (an `unionfs-swift` process with the mount point
/// among its arguments), asked with SIGUSR1, and its report read from the file it writes
/// (`FuseSession.statsPath`, named by its user and pid; the same report goes to its stderr).
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print requests per opcode, latency percentiles and bytes of a mount's daemon.",
        discussion: "Or send SIGUSR1 to the daemon: the same report goes to its stderr."
    )

    @Argument(help: "The mount point.")
    var mountpoint: String

    func run() throws {
        guard let real = realpath(mountpoint, nil) else {
            throw ConfigurationError("'\(mountpoint)': \(String(cString: strerror(errno)))")
        }
        let target = String(cString: real)
        free(real)
        let pids = Self.daemons(servingAt: target)
        guard let pid = pids.first else {
            throw ConfigurationError("no unionfs-swift daemon serving '\(target)' found in /proc")
        }
        if pids.count > 1 { throw ConfigurationError("several daemons name '\(target)': \(pids)") }
        // The daemon's user, from its /proc entry: the report is in a file of that user's.
        var proc = stat()
        guard stat("/proc/\(pid)", &proc) == 0 else {
            throw ConfigurationError("daemon \(pid): \(String(cString: strerror(errno)))")
        }
        let path = FuseSession.statsPath(pid: pid, uid: proc.st_uid)
        let before = Self.modified(path, owner: proc.st_uid)
        guard kill(pid, SIGUSR1) == 0 else {
            throw ConfigurationError("cannot signal daemon \(pid): \(String(cString: strerror(errno)))")
        }
        for _ in 0..<100 {  // 2 s at most
            if let t = Self.modified(path, owner: proc.st_uid), t.tv_sec != before?.tv_sec || t.tv_nsec != before?.tv_nsec,
               let text = Self.read(path) {
                print(text, terminator: "")
                return
            }
            usleep(20_000)
        }
        throw ConfigurationError("daemon \(pid) did not answer in 2 s (an older unionfs-swift?)")
    }

    /// The pids of `unionfs-swift` processes with `mountpoint` among their arguments.
    static func daemons(servingAt mountpoint: String) -> [pid_t] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var found: [pid_t] = []
        let me = getpid()
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let pid = pid_t(name), pid != me, let cmd = read("/proc/\(name)/cmdline") else { continue }
            let args = cmd.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
            guard let first = args.first, first.hasSuffix("unionfs-swift") else { continue }
            if args.dropFirst().contains(where: { a in
                guard let r = realpath(a, nil) else { return false }
                defer { free(r) }
                return String(cString: r) == mountpoint
            }) { found.append(pid) }
        }
        return found
    }

    /// The report's modification time; nil unless it is a regular file of the daemon's user
    /// (not a link, nor a file another user left in its place).
    static func modified(_ path: String, owner: uid_t) -> timespec? {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == owner else { return nil }
        return st.st_mtim
    }

    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
