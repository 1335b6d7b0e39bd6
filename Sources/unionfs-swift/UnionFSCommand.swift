import ArgumentParser
import Glibc
import UnionFS

/// `unionfs-swift`: mount a union of layer directories, fuse-overlayfs compatible.
@main
struct UnionFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unionfs-swift",
        abstract: "Overlay union filesystem in user space (FUSE), compatible with kernel overlayfs.",
        discussion: """
        Mounting (the default command):
          unionfs-swift [-f] [-d] [-s] -o OPTIONS MOUNTPOINT
          unionfs-swift SOURCE MOUNTPOINT -o OPTIONS  (as mount.fuse3 calls it)
        -f: foreground, -d: foreground with a trace, -s: one thread.
        Without -f the command returns once the daemon serves (status 0), or once it
        gave up and unmounted (status 1, saying why).
        Unmount with: fusermount3 -u MOUNTPOINT

        """ + MountCommand.optionsHelp,
        version: UnionFSVersion.string,
        subcommands: [MountCommand.self, DiffCommand.self, CommitCommand.self, ApplyCommand.self, StatsCommand.self,
                      ImageCommand.self],
        defaultSubcommand: MountCommand.self
    )

    /// Parses and runs; every error is one line on stderr naming what is wrong.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ConfigurationError {
            fail(error.message, code: 1)
        } catch let error as CommandFailure {
            fail(error.message, code: error.status)
        } catch let error as ExitCode {
            Glibc.exit(error.rawValue)  // the failure was reported where it happened
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help and --version print and exit 0
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail(message, code: code.rawValue)
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        var line = "unionfs-swift: " + message
        if line.hasSuffix(".") { line.removeLast() }
        printError(line)
        Glibc.exit(code)
    }
}

/// A failure with an exit status other than 1 (which `ConfigurationError` gets).
struct CommandFailure: Error {
    let message: String
    let status: Int32
}

enum UnionFSVersion {
    static let string = "0.1.0"
}

/// Writes one line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
