import Foundation
import Glibc
import UnionFS
import UnionFSC
import XCTest

/// The C API returns the errno of what failed: a full disk during apply is ENOSPC, not EINVAL,
/// and a malformed tar is still EINVAL, each with a one-line message naming the thing.
final class CAPIErrorTests: TempDirTestCase {
    private func lastError() -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = unionfs_last_error(&buffer, buffer.count)
        return String(cString: buffer)
    }

    /// A 1 MiB tar applied into a 256 KiB tmpfs fills it: the C caller sees ENOSPC.
    func testApplyOntoAFullDiskIsENOSPC() throws {
        guard TestEnvironment.isRoot else { throw XCTSkip("mounting a tmpfs needs root") }
        let small = try makeDir("small")
        guard Glibc.mount("tmpfs", small, "tmpfs", 0, "size=256k") == 0 else {
            throw XCTSkip("mount -t tmpfs: \(String(cString: strerror(errno)))")
        }
        addCleanup { MountTable.forceUnmount(small) }
        let tar = tmp + "/big.tar"
        let r = try Run.program("/usr/bin/python3", ["-c", """
            import io, tarfile
            t = tarfile.open('\(tar)', 'w')
            data = b'x' * (1 << 20)
            i = tarfile.TarInfo('big'); i.size = len(data); t.addfile(i, io.BytesIO(data))
            t.close()
            """], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rc = unionfs_apply(tar, small + "/layer", 0)
        XCTAssertEqual(rc, ENOSPC, "got \(rc): \(lastError())")
        XCTAssertTrue(lastError().contains("big"), lastError())
        XCTAssertFalse(FileManager.default.fileExists(atPath: small + "/layer"), "nothing landed")
    }

    /// Bad input keeps EINVAL; a missing tar is the errno of opening it.
    func testMalformedAndMissingTars() throws {
        let bad = tmp + "/bad.tar"
        let r = try Run.program("/usr/bin/python3", ["-c", """
            import io, tarfile
            t = tarfile.open('\(bad)', 'w')
            i = tarfile.TarInfo('../escape'); i.size = 1; t.addfile(i, io.BytesIO(b'x'))
            t.close()
            """], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(unionfs_apply(bad, tmp + "/out", 1), EINVAL, lastError())
        XCTAssertTrue(lastError().contains("'..'"), lastError())
        let missing = unionfs_apply(tmp + "/no-such.tar", tmp + "/out2", 1)
        XCTAssertNotEqual(missing, 0)
        XCTAssertTrue(lastError().contains("no-such.tar"), lastError())
    }
}
