import UnionFS
import UnionFSC
import XCTest

/// The C API builds one option string from the paths it is given (`optionString`); the
/// option parser must give every path back as it was, whatever commas and backslashes it holds.
final class CAPIOptionTests: XCTestCase {
    func testPathsWithCommasAndBackslashesComeBackUnchanged() throws {
        let paths = [#"/tmp/plain"#, #"/tmp/a,b"#, #"/tmp/back\slash"#, #"/tmp/ends-in\"#,
                     #"/tmp/two\\backslashes"#, #"/tmp/slash-comma\,x"#, #"/tmp/\\,\,"#]
        for upper in paths {
            let work = upper + "-work"
            let s = optionString(lowerdirs: "/l1:/l2", upperdir: upper, workdir: work, extra: "ro")
            let parsed = try MountOptions.parse([s])
            XCTAssertEqual(parsed.stack.upperdir, upper, "from \(s)")
            XCTAssertEqual(parsed.stack.workdir, work, "from \(s)")
            XCTAssertEqual(parsed.stack.lowerdirs, ["/l1", "/l2"], "from \(s)")
            XCTAssertTrue(parsed.fileSystem.readOnly, "from \(s)")
        }
    }

    /// Lowerdirs keep their own `\:` escape (a colon in a path) through the option string.
    func testLowerdirColonEscapesSurvive() throws {
        let s = optionString(lowerdirs: #"/l\:one:/l,two:/l\\three"#, upperdir: nil, workdir: nil, extra: nil)
        XCTAssertEqual(try MountOptions.parse([s]).stack.lowerdirs, ["/l:one", "/l,two", #"/l\three"#])
    }
}
