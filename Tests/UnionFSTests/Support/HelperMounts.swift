import Foundation
import Glibc
import XCTest

/// Support for mounts made through mount(8) (`mount -t fuse.unionfs-swift`, `mount -T FSTAB`):
/// mount.fuse3 starts the daemon without -f, so it detaches and is no child of the test.
extension TempDirTestCase {
    /// Processes whose command line mentions `needle` (our unique temp path): the daemon we started.
    func processes(mentioning needle: String) -> [pid_t] {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return items.compactMap { item -> pid_t? in
            guard let pid = pid_t(item), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(item)/cmdline") else { return nil }
            return String(decoding: data, as: UTF8.self).contains(needle) ? pid : nil
        }
    }

    /// Waits up to `timeout` seconds for every process mentioning `needle` to exit; true if none is left.
    func waitForDaemonExit(mentioning needle: String, timeout: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !processes(mentioning: needle).isEmpty && Date() < deadline { usleep(20_000) }
        return processes(mentioning: needle).isEmpty
    }

    /// At teardown: unmount `mnt` whatever it takes, give the detached daemon a bounded moment to
    /// exit after the unmount, then kill what is left of it.
    func addDetachedMountCleanup(_ mnt: String) {
        addCleanup { [self] in
            MountTable.forceUnmount(mnt)
            if !waitForDaemonExit(mentioning: mnt) {
                for pid in processes(mentioning: mnt) { kill(pid, SIGKILL) }
            }
        }
    }

    /// mount(8) (libmount) removes PATH from the helper's environment, so mount.fuse3's /bin/sh
    /// searches only its default path (/usr/local/sbin:...:/bin). Makes the built binary reachable
    /// there as /usr/local/sbin/unionfs-swift for this test (only when nothing is there already;
    /// removed at teardown if it is still our link).
    func linkBinaryOnDefaultPath() throws {
        let link = "/usr/local/sbin/unionfs-swift"
        var st = stat()
        guard lstat(link, &st) != 0 else { return }
        try? FileManager.default.createDirectory(atPath: "/usr/local/sbin", withIntermediateDirectories: true)
        let target = TestEnvironment.binary
        guard Glibc.symlink(target, link) == 0 else {
            throw XCTSkip("cannot link \(link): \(String(cString: strerror(errno)))")
        }
        addCleanup {
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == target { unlink(link) }
        }
    }
}
