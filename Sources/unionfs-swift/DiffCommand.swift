import ArgumentParser
import Glibc
import UnionFS

/// `unionfs-swift diff -o lowerdir=...,upperdir=... [--json]`: what `docker diff` would print for
/// a container whose writable layer is the upper dir, computed from the upper alone.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "List the changes an upper dir makes over its lowers (A/C/D, as docker diff).",
        discussion: """
        Prints 'A /path', 'C /path' or 'D /path', one per line, sorted by path. Only lowerdir,
        upperdir, workdir (never read) and userxattr are meaningful in -o; nothing is mounted.
        Exit status: 0 (with --exit-code: 0 no changes, 1 changes), 2 or more on errors.
        """
    )

    @Option(name: .short, help: ArgumentHelp("lowerdir=DIR[:DIR...],upperdir=DIR[,userxattr]", valueName: "options"))
    var o: [String] = []

    @Flag(help: "Print a JSON array of {\"Kind\",\"Path\"} objects instead of lines.")
    var json = false

    @Flag(help: "Read the upper as kernel overlayfs does: '.wh.' names are plain files.")
    var kernelStrict = false

    @Flag(help: "Exit with 1 when there are changes and 0 when there are none (as diff(1) and git diff --exit-code).")
    var exitCode = false

    func run() throws {
        let changes: [Change]
        do {
            let source = try LayerOptions.upperChanges(o, kernelStrict: kernelStrict)
            do { changes = try source.changes() } catch { throw UnionFSError("diff failed", wrapping: error) }
            try writeStdout(json ? Change.json(changes) : Change.text(changes))
        } catch let error as ConfigurationError where exitCode {
            // 1 means "there are changes" here, so trouble is 2, as for diff(1).
            throw CommandFailure(message: error.message, status: 2)
        }
        if exitCode && !changes.isEmpty { throw ExitCode(1) }
    }
}

/// The `-o` handling the change commands share.
enum LayerOptions {
    /// Parses `-o` like `mount` does and opens the lowers and the upper for reading changes.
    static func upperChanges(_ o: [String], kernelStrict: Bool) throws -> UpperChanges {
        let options = try MountOptions.parse(o)
        guard let upper = options.stack.upperdir else {
            throw ConfigurationError("missing option: upperdir=DIR")
        }
        let ns = options.stack.xattrNamespace ?? .forThisProcess
        return try UpperChanges(lowerdirs: options.stack.lowerdirs, upperdir: upper, xattrNamespace: ns,
                                format: kernelStrict ? .kernel(ns) : .any)
    }
}

/// Writes all of `text` to standard output; a closed pipe or full disk is an error.
func writeStdout(_ text: String) throws {
    var text = text
    do { try text.withUTF8 { try Sys.writeAll(1, UnsafeRawBufferPointer($0)) } } catch {
        throw UnionFSError("cannot write the output", wrapping: error)
    }
}
