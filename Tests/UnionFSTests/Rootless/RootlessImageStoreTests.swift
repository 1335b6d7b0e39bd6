import Foundation
import Glibc
import XCTest

/// A user without root and without subordinate IDs loads and mounts an image whose files
/// belong to many owners: the store (its default place, under $XDG_DATA_HOME) records each
/// owner and mode in `user.containers.override_stat`, the mount shows them, and the tree equals
/// root's mount of the same archive: names, types, modes, owners, sizes, link counts, and the
/// contents the user may read. (Through a plain user's mount, directories the shown owners close
/// to others are closed to the user too: the kernel checks the shown owners and modes.)
final class RootlessImageStoreTests: ImageTestCase {
    /// The tree as the user's and root's shells print it. Symlinks and special files carry no
    /// owner: the kernel allows user.* xattrs on regular files and directories only, so a store
    /// without root cannot record theirs.
    static let snapshot = """
        cd "$1" || exit 1
        find . -type d -printf '%p d %m %U:%G\\n' -o -type l -printf '%p l -> %l\\n' \\
               -o -type f -printf '%p f %m %U:%G %s %n\\n' -o -printf '%p %y %m\\n' | LC_ALL=C sort
        find . -type f -perm -o+r -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum
        """

    func testUserWithoutSubordinateIDsLoadsAndMountsManyOwners() throws {
        let started = Date()
        let user = try RootlessUser(subordinateIDs: false, for: self)
        let archive = try manyOwnerArchive()

        // Root's store and mount: the reference.
        try imageOK(["load", archive])
        let rootMount = try mountImage("localhost/owners:latest")
        let reference = try Run.program("/bin/sh", ["-c", Self.snapshot, "snap", rootMount], timeout: 60)
        XCTAssertEqual(reference.status, 0, reference.stderr)

        // The user's, in the default store.
        let data = user.home + "/data", mnt = user.home + "/mnt"
        let out = try user.ok("""
            set -e
            mkdir -p "\(mnt)"
            "\(TestEnvironment.binary)" image load "\(archive)" >/dev/null
            test -f "\(data)/unionfs-swift/store.json" && echo default-store
            "\(TestEnvironment.binary)" image mount localhost/owners:latest "\(mnt)"
            sh -c '\(Self.snapshot.replacingOccurrences(of: "'", with: "'\\''"))' snap "\(mnt)" > "\(user.home)/tree"
            fusermount3 -u "\(mnt)"
            """, timeout: 120, environment: ["XDG_DATA_HOME": data])
        XCTAssertEqual(out, "default-store\n")
        let mine = try String(contentsOfFile: user.home + "/tree", encoding: .utf8)
        XCTAssertEqual(mine, reference.stdout, "the user's mount differs from root's mount of the same archive")
        for line in ["./srv/app d 755 1234:2345", "./srv/app/secret f 644 1234:2345 2 1", "./root-only f 600 0:0 2 1",
                     "./bin/setuid-copy f 4755 0:0", "./tmp d 1777 0:0", "./etc/greeting f 600 65533:100", "./ro-dir/x f 444 0:0",
                     "./fifo p 620"] {
            XCTAssertTrue(mine.contains(line), "missing '\(line)' in\n\(mine)")
        }
        print("RootlessImageStoreTests: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}

extension ImageTestCase {
    /// `localhost/owners:latest` as an OCI archive readable by every user: the busybox rootfs
    /// with files, directories, a symlink and a FIFO of many owners, setuid, sticky and
    /// read-only modes.
    func manyOwnerArchive() throws -> String {
        let rootfs = try makeRootfs("rootfs")
        try shell("""
            cd '\(rootfs)' && install -d -o 1234 -g 2345 -m 0755 srv/app && echo s > srv/app/secret && \
            chown 1234:2345 srv/app/secret && chmod 0644 srv/app/secret && echo r > root-only && chmod 0600 root-only && \
            cp bin/busybox bin/setuid-copy && chmod 4755 bin/setuid-copy && mkdir -m 1777 tmp && \
            chown 65533:100 etc/greeting && mkdir -m 0555 ro-dir && echo x > ro-dir/x && chmod 0444 ro-dir/x && \
            chown -h 7:7 bin/sh && mkfifo -m 0620 fifo && chown 5:6 fifo
            """)
        try podman(["import", try tar(rootfs, to: tmp + "/rootfs.tar"), "localhost/owners:latest"])
        let archive = try podmanSave("localhost/owners:latest", format: "oci-archive")
        chmod(tmp, 0o755); chmod(archive, 0o644)
        return archive
    }
}
