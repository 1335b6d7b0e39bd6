import ArgumentParser
import Glibc
import UnionFS

extension LayerCompression: ExpressibleByArgument {}

/// `unionfs-swift commit -o lowerdir=...,upperdir=... --output FILE [--compress gzip|zstd]`:
/// the upper's changes as an OCI layer tar, with its digests.
struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Write an upper dir's changes as an OCI layer tar.",
        discussion: """
        Prints, one per line: 'diffID sha256:...' (the uncompressed tar), 'digest sha256:...'
        (the bytes written) and 'size N'. The same upper always gives the same bytes.
        """
    )

    @Option(name: .short, help: ArgumentHelp("lowerdir=DIR[:DIR...],upperdir=DIR[,userxattr]", valueName: "options"))
    var o: [String] = []

    @Option(help: ArgumentHelp("The layer file to write ('-' for standard output).", valueName: "file"))
    var output: String

    @Option(help: "Compress the layer: none, gzip or zstd.")
    var compress: LayerCompression = .none

    @Flag(help: "Read the upper as kernel overlayfs does: '.wh.' names are plain files.")
    var kernelStrict = false

    @Flag(help: "Print only the result, never progress.")
    var quiet = false

    func run() throws {
        let source = try LayerOptions.upperChanges(o, kernelStrict: kernelStrict)
        let toStdout = output == "-"
        let fd = toStdout ? 1 : open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigurationError("--output '\(output)': \(String(cString: strerror(errno)))") }
        defer { if !toStdout { close(fd) } }
        let progress = Progress(enabled: !quiet, verb: "committed")
        let result: CommitResult
        do {
            result = try LayerCommit(source).write(to: fd, compression: compress, progress: progress.callback)
        } catch {
            progress.end()
            if !toStdout { unlink(output) }
            throw ConfigurationError("commit failed: \(error)")
        }
        progress.end()
        let text = "diffID \(result.diffID)\ndigest \(result.digest)\nsize \(result.size)\n"
        if toStdout { printError(text.dropLast().description) } else { try writeStdout(text) }
    }
}

/// A one-line progress display on standard error, only when it is a terminal.
final class Progress {
    let enabled: Bool
    let verb: String
    private var last: Int64 = 0

    init(enabled: Bool, verb: String) {
        self.enabled = enabled && isatty(2) == 1
        self.verb = verb
    }

    var callback: LayerProgress? {
        guard enabled else { return nil }
        return { [self] entries, bytes in
            let now = Int64(time(nil))
            guard now != last else { return }
            last = now
            let line = "\r\(verb) \(entries) entries, \(bytes / 1_048_576) MiB"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// Clears the progress line.
    func end() {
        guard enabled, last != 0 else { return }
        let clear = "\r\u{1b}[K"
        _ = clear.withCString { write(2, $0, strlen($0)) }
    }
}
