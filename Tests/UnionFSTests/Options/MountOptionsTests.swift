import UnionFS
import XCTest

/// `-o` parsing: fuse-overlayfs syntax, escapes, errors that name the option.
final class MountOptionsTests: XCTestCase {
    func assertRejected(_ strings: [String], mentions parts: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
        do {
            let o = try MountOptions.parse(strings)
            XCTFail("expected an error for \(strings), got \(o)", file: file, line: line)
        } catch {
            for p in parts {
                XCTAssertTrue(error.message.contains(p), "message '\(error.message)' should mention '\(p)'",
                              file: file, line: line)
            }
        }
    }

    func testLowerdirSplitsTopFirst() throws {
        let o = try MountOptions.parse(["lowerdir=/a:/b:/c"])
        XCTAssertEqual(o.stack.lowerdirs, ["/a", "/b", "/c"])
        XCTAssertNil(o.stack.upperdir)
        XCTAssertNil(o.stack.workdir)
        XCTAssertTrue(o.stack.ociWhiteouts)
        XCTAssertNil(o.stack.xattrNamespace, "chosen at open from the privilege")
    }

    func testColonEscapeInLowerdir() throws {
        let o = try MountOptions.parse(["lowerdir=/a\\:b:/c\\:\\:d"])
        XCTAssertEqual(o.stack.lowerdirs, ["/a:b", "/c::d"])
    }

    func testCommaEscape() throws {
        let o = try MountOptions.parse(["lowerdir=/x\\,y:/z,upperdir=/u\\,v,workdir=/w"])
        XCTAssertEqual(o.stack.lowerdirs, ["/x,y", "/z"])
        XCTAssertEqual(o.stack.upperdir, "/u,v")
        XCTAssertEqual(o.stack.workdir, "/w")
    }

    func testUnknownOptionIsNamed() {
        assertRejected(["lowerdir=/a,frobnicate"], mentions: ["frobnicate"])
        assertRejected(["lowerdir=/a,bogus=1"], mentions: ["bogus"])
    }

    func testOptionNeedingValue() {
        assertRejected(["lowerdir=/a,upperdir"], mentions: ["upperdir", "value"])
        assertRejected(["lowerdir=/a,workdir"], mentions: ["workdir", "value"])
        assertRejected(["lowerdir"], mentions: ["lowerdir", "value"])
        assertRejected(["lowerdir=/a,fsname"], mentions: ["fsname"])
    }

    func testFlagTakingNoValue() {
        assertRejected(["lowerdir=/a,userxattr=1"], mentions: ["userxattr", "no value"])
    }

    func testEmptyAndMissingLowerdir() {
        assertRejected(["lowerdir="], mentions: ["lowerdir"])
        assertRejected(["lowerdir=/a::/b"], mentions: ["lowerdir", "empty"])
        assertRejected(["allow_other"], mentions: ["lowerdir"])
    }

    func testGenericFuseOptionsPassedThrough() throws {
        let o = try MountOptions.parse(["lowerdir=/a,allow_other,nodev,noatime,fsname=myfs", "nosuid,subtype=x,max_read=131072"])
        for opt in ["allow_other", "nodev", "noatime", "fsname=myfs", "nosuid", "subtype=x", "max_read=131072"] {
            XCTAssertTrue(o.fuseOptions.contains(opt), "\(opt) should be passed to libfuse: \(o.fuseOptions)")
        }
        XCTAssertFalse(o.fuseOptions.contains { $0.hasPrefix("lowerdir") }, "our own options stay ours")
    }

    func testOwnOptions() throws {
        let o = try MountOptions.parse(["lowerdir=/l,upperdir=/u,workdir=/w,userxattr,no_oci_whiteouts,ro"])
        XCTAssertEqual(o.stack.upperdir, "/u")
        XCTAssertEqual(o.stack.workdir, "/w")
        XCTAssertEqual(o.stack.xattrNamespace, .user)
        XCTAssertFalse(o.stack.ociWhiteouts)
        XCTAssertTrue(o.fileSystem.readOnly)
    }

    /// `readahead=KIB`: a size from 0 to 65536; unset means the default (nil).
    func testReadaheadOption() throws {
        XCTAssertNil(try MountOptions.parse(["lowerdir=/l"]).fileSystem.readaheadKiB)
        XCTAssertEqual(try MountOptions.parse(["lowerdir=/l,readahead=256"]).fileSystem.readaheadKiB, 256)
        XCTAssertEqual(try MountOptions.parse(["lowerdir=/l,readahead=0"]).fileSystem.readaheadKiB, 0)
        assertRejected(["lowerdir=/l,readahead=1M"], mentions: ["readahead", "1M"])
        assertRejected(["lowerdir=/l,readahead=65537"], mentions: ["readahead", "65536"])
        assertRejected(["lowerdir=/l,readahead"], mentions: ["readahead"])
    }

    /// The namespace can be forced either way; a bad value names the option.
    func testXattrNamespaceOption() throws {
        XCTAssertEqual(try MountOptions.parse(["lowerdir=/l,xattr_namespace=trusted"]).stack.xattrNamespace, .trusted)
        XCTAssertEqual(try MountOptions.parse(["lowerdir=/l,xattr_namespace=user"]).stack.xattrNamespace, .user)
        XCTAssertNil(try MountOptions.parse(["lowerdir=/l,userxattr,xattr_namespace=auto"]).stack.xattrNamespace)
        XCTAssertThrowsError(try MountOptions.parse(["lowerdir=/l,xattr_namespace=security"])) {
            XCTAssertTrue("\($0)".contains("xattr_namespace"), "\($0)")
        }
    }

    /// What containers/storage appends (an empty item before `volatile`) and fuse-overlayfs's
    /// `uring_idle=auto|off`: ring workers wait at SCHED_IDLE (IdleWaitGuard), on by default.
    func testUringIdleOption() throws {
        XCTAssertTrue(try MountOptions.parse(["lowerdir=/l"]).fileSystem.uringIdle)
        XCTAssertTrue(try MountOptions.parse(["lowerdir=/l,uring_idle=auto"]).fileSystem.uringIdle)
        XCTAssertFalse(try MountOptions.parse(["lowerdir=/l,uring_idle=off"]).fileSystem.uringIdle)
        assertRejected(["lowerdir=/l,uring_idle=on"], mentions: ["uring_idle", "auto or off"])
        assertRejected(["lowerdir=/l,uring_idle"], mentions: ["uring_idle"])
    }

    /// `fsync=` as users put it in storage.conf's mountopt.
    func testPodmanAdditions() throws {
        let o = try MountOptions.parse(["lowerdir=/l,upperdir=/u,workdir=/w,,volatile,private,xattr_permissions=2"])
        XCTAssertTrue(o.fileSystem.volatile)
        XCTAssertEqual(o.fileSystem.xattrPermissions, 2)
        XCTAssertTrue(try MountOptions.parse(["lowerdir=/l,fsync=0"]).fileSystem.volatile)
        XCTAssertFalse(try MountOptions.parse(["lowerdir=/l,volatile,fsync=1"]).fileSystem.volatile)
        assertRejected(["lowerdir=/l,fsync=2"], mentions: ["fsync", "2"])
        XCTAssertFalse(try MountOptions.parse(["lowerdir=/l"]).fileSystem.writebackCache, "off by default")
        XCTAssertTrue(try MountOptions.parse(["lowerdir=/l,writeback=1"]).fileSystem.writebackCache)
        XCTAssertFalse(try MountOptions.parse(["lowerdir=/l,volatile"]).fileSystem.writebackCache, "volatile alone: off")
        assertRejected(["lowerdir=/l,writeback=yes"], mentions: ["writeback", "yes"])
        // containers/storage puts a colon before every triple.
        let m = try MountOptions.parse(["lowerdir=/l,uidmapping=:0:100000:65536:65536:1000:1,gidmapping=:0:100000:65536"])
        XCTAssertEqual(m.fileSystem.idMapping.uids.count, 2)
        XCTAssertEqual(m.fileSystem.idMapping.gids.first?.shown, 100000)
        assertRejected(["lowerdir=/l,uidmapping=::0:1:1"], mentions: ["uidmapping"])
        let c = try MountOptions.parse([#"lowerdir=/l,context="system_u:object_r:container_file_t:s0:c1,c2""#])
        XCTAssertEqual(c.fuseOptions, [#"context="system_u:object_r:container_file_t:s0:c1,c2""#])
    }

    func testSeveralOptionStringsCombine() throws {
        let o = try MountOptions.parse(["lowerdir=/l", "upperdir=/u", "workdir=/w"])
        XCTAssertEqual(o.stack.lowerdirs, ["/l"])
        XCTAssertEqual(o.stack.upperdir, "/u")
        XCTAssertEqual(o.stack.workdir, "/w")
    }
}
