import Foundation
import Glibc
import XCTest

/// A minimal Debian root filesystem as a tar, made once with `debootstrap --variant=minbase` and
/// kept under /var/cache/unionfs-tests/ (keyed by suite), so repeated runs and CI on the same
/// machine import it in seconds instead of bootstrapping for minutes.
enum DebootstrapCache {
    static let directory = "/var/cache/unionfs-tests"
    /// Bootstrapping downloads and unpacks ~80 packages: minutes, bounded.
    static let buildTimeout: TimeInterval = 900

    /// The host's Debian suite (VERSION_CODENAME), so the packages come from the mirror apt uses.
    static var suite: String {
        let text = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("VERSION_CODENAME=") {
            let v = line.dropFirst("VERSION_CODENAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            if !v.isEmpty { return v }
        }
        return "bookworm"
    }

    /// The first Debian mirror apt is configured with (deb822 or one-line form).
    static var mirror: String {
        let files = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
        for f in files {
            guard let text = try? String(contentsOfFile: f, encoding: .utf8) else { continue }
            for raw in text.split(separator: "\n") {
                let line = raw.trimmingCharacters(in: .whitespaces)
                var url: Substring?
                if line.hasPrefix("URIs:") { url = line.dropFirst(5).split(separator: " ").first }
                if line.hasPrefix("deb ") { url = line.split(separator: " ").first { $0.hasPrefix("http") } }
                if let url, url.hasPrefix("http"), !url.contains("security") { return String(url) }
            }
        }
        return "http://deb.debian.org/debian"
    }

    static var tarball: String { directory + "/debootstrap-\(suite)-minbase.tar" }

    /// The cached tarball, built first when absent. Throws XCTSkip when debootstrap cannot run
    /// here at all (not installed, no mirror), with its reason.
    static func rootfsTarball() throws -> String {
        let path = tarball
        if FileManager.default.fileExists(atPath: path) { return path }
        let debootstrap = "/usr/sbin/debootstrap"
        guard FileManager.default.isExecutableFile(atPath: debootstrap) else {
            throw XCTSkip("debootstrap is not installed (apt-get install debootstrap): no base image")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let work = directory + "/build-\(getpid())"
        defer { _ = try? Run.program("/bin/rm", ["-rf", work], timeout: 120) }
        let r = try Run.program(debootstrap, ["--variant=minbase", suite, work + "/rootfs", mirror],
                                timeout: buildTimeout)
        guard !r.timedOut, r.status == 0 else {
            let last = (r.stdout + r.stderr).split(separator: "\n").suffix(3).joined(separator: " | ")
            throw XCTSkip("debootstrap \(suite) \(mirror) could not build a base system "
                          + (r.timedOut ? "within \(Int(buildTimeout)) s" : "(exit \(r.status))") + ": \(last)")
        }
        // Package caches and lists are a third of the size and no use in a test image.
        _ = try Run.program("/bin/sh", ["-c", "rm -rf '\(work)/rootfs/var/cache/apt/'* '\(work)/rootfs/var/lib/apt/lists/'*"],
                            timeout: 60)
        let partial = work + "/rootfs.tar"
        let t = try Run.program("/bin/tar", ["--numeric-owner", "--xattrs", "-C", work + "/rootfs", "-cf", partial, "."],
                                timeout: 300)
        guard t.status == 0 else { throw PodmanStore.Failure(description: "tar of the rootfs failed: \(t.stderr)") }
        // Land by rename: a run killed half-way never leaves a partial cache entry.
        guard rename(partial, path) == 0 else {
            throw PodmanStore.Failure(description: "rename into \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }
}
