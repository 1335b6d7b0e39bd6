import UnionFS
import XCTest

/// The command line's option help is rendered from the table the parser reads: every option
/// the parser accepts is in the help, and every option the help shows is accepted.
final class OptionHelpTests: XCTestCase {
    /// The words of `text` made of option characters.
    private func words(_ text: Substring) -> [String] {
        text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init)
    }

    func testEveryParsedOptionIsInTheHelp() {
        let help = MountOptions.help
        let helpWords = Set(help.split(separator: "\n").flatMap { words($0) })
        for key in MountOptions.knownKeys {
            XCTAssertTrue(helpWords.contains(key), "option '\(key)' is parsed but not in the help")
        }
    }

    func testEveryOptionInTheHelpIsParsed() {
        let lines = MountOptions.help.split(separator: "\n")
        // Option lines start with two spaces and the option; the lists of libfuse's options
        // and fstab words are indented by four.
        var shown: [String] = []
        for line in lines {
            if line.hasPrefix("  ") && !line.hasPrefix("   ") {
                let usage = line.dropFirst(2).prefix { $0 != " " }
                if let first = words(usage).first, first.first!.isLowercase { shown.append(first) }
            } else if line.hasPrefix("    ") && !line.hasPrefix("     ") {
                shown += words(line)
            }
        }
        XCTAssertGreaterThan(shown.count, 40, "\(shown)")
        for key in shown {
            XCTAssertTrue(MountOptions.isKnown(key), "the help shows '\(key)', which the parser refuses")
        }
        XCTAssertFalse(MountOptions.isKnown("no_such_option"))
    }

    /// The help's option lines still read as before: usage, then its meaning.
    func testHelpLayout() {
        let help = MountOptions.help
        XCTAssertTrue(help.hasPrefix("Options (-o, comma-separated, repeatable):\n"))
        XCTAssertTrue(help.contains("\n  lowerdir=A[:B...]  lower layers, top first"), help)
        XCTAssertTrue(help.contains("\n  upperdir=DIR       copy-on-write layer"), help)
        XCTAssertTrue(help.hasSuffix("Anything else is an error that names the option."))
    }
}
