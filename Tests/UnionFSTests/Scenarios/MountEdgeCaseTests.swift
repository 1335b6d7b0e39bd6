import Foundation
import Glibc
import XCTest

/// The mount tier of `EdgeCases`: every row through a real unionfs-swift mount and through
/// kernel overlayfs (`userxattr`) on the same layers. The kernel must pass the row too (which
/// checks the table), both must answer every step alike and end with the same tree, and the
/// upper unionfs-swift wrote must show that tree under the kernel (docs/SEMANTICS.md §6.22).
/// Lowers in the OCI form, which the kernel does not read, must give the tree the kernel gave
/// for the same layers in its own form. A row where the project goes beyond the kernel on
/// purpose (`kernelAnswers`) checks that the kernel answers as the row says instead.
final class MountEdgeCaseTests: MountTestCase {
    func testEveryEdgeCaseMatchesKernelOverlayfs() throws {
        for row in EdgeCases.all {
            for p in try compare(row) { XCTFail("§\(row.id) \(row.title): \(p)") }
        }
    }

    func compare(_ row: EdgeCase) throws -> [String] {
        var problems: [String] = []
        // Kernel overlayfs: the oracle.
        let k = try EdgeCaseRunner.fixture(row, form: .overlay, root: try makeDir("k-\(row.id)"))
        let kmnt = try makeDir("k-\(row.id)-mnt")
        try mountKernel(lowers: k.lowers, upper: k.upper, work: k.work, at: kmnt)
        let kh = PosixHarness(root: kmnt)
        let kernel = EdgeCaseRunner.act(row, on: kh)
        if let answers = row.kernelAnswers {
            if kernel.outcomes != answers {
                problems.append("kernel overlayfs answered \(kernel.outcomes.map(EdgeCaseRunner.text)), the table says \(answers.map(EdgeCaseRunner.text))")
            }
        } else {
            problems += (kernel.problems + EdgeCaseRunner.check(row, on: kh, noted: kernel.noted)).map { "kernel overlayfs: " + $0 }
        }
        let reference = try TreeSnapshot.walk(kmnt)
        MountTable.forceUnmount(kmnt)

        for form in FixtureForm.allCases {
            let f = try EdgeCaseRunner.fixture(row, form: form, root: try makeDir("\(form)-\(row.id)"))
            let lowerdir = "lowerdir=" + f.lowers.map { $0.replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":")
            let m = try fuseMount(lowerdir + ",upperdir=\(f.upper),workdir=\(f.work),userxattr",
                                  name: "\(form)-\(row.id)-mnt")
            let h = PosixHarness(root: m.mountPoint)
            let mine = EdgeCaseRunner.act(row, on: h)
            var here = mine.problems + EdgeCaseRunner.check(row, on: h, noted: mine.noted)
            let sameAsKernel = row.kernelAnswers == nil
            if sameAsKernel && mine.outcomes != kernel.outcomes {
                here.append("steps answered \(mine.outcomes.map(EdgeCaseRunner.text)), kernel \(kernel.outcomes.map(EdgeCaseRunner.text))")
            }
            let tree = try TreeSnapshot.walk(m.mountPoint)
            m.stop()
            if sameAsKernel {
                here += tree.differences(from: reference, ignoringDirectorySize: true).map { "tree vs kernel: " + $0 }
            }
            here += EdgeCaseRunner.checkUpper(row, upper: f.upper, lowers: f.lowers)
            if form == .overlay {
                // Our upper as the top lower under the kernel: the same tree (§6.22).
                let check = try makeDir("\(form)-\(row.id)-check")
                try mountKernel(lowers: [f.upper] + f.lowers, upper: nil, work: nil, at: check)
                here += try TreeSnapshot.walk(check).differences(from: tree, ignoringDirectorySize: true)
                    .map { "upper under the kernel: " + $0 }
                MountTable.forceUnmount(check)
            }
            problems += here.map { "[\(form) lowers] " + $0 }
        }
        return problems
    }

    /// Kernel overlayfs with `userxattr` at `mountPoint`, unmounted at teardown at the latest.
    func mountKernel(lowers: [String], upper: String?, work: String?, at mountPoint: String) throws {
        var data = "lowerdir=" + lowers.map { $0.replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":")
        if let upper, let work { data += ",upperdir=\(upper),workdir=\(work)" }
        data += ",userxattr"
        guard Glibc.mount("overlay", mountPoint, "overlay", 0, data) == 0 else {
            throw FixtureError("mount -t overlay -o \(data)", mountPoint)
        }
        addCleanup { if MountTable.isMounted(mountPoint) { MountTable.forceUnmount(mountPoint) } }
    }
}
