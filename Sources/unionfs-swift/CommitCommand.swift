import ArgumentParser
import Glibc
import UnionFS

/// `unionfs-swift commit -o lowerdir=...,upperdir=... --output FILE [--compress gzip|zstd]`:
/// the upper's changes as an OCI layer tar, with its digests.
struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Write an upper dir's changes as an OCI layer tar.",
        discussion: """
        Prints, one per line: 'diffID sha256:...' (the uncompressed tar), 'digest sha256:...'
        (the bytes written) and 'size N' (or one JSON object with --json; on standard error when
        the layer goes to standard output). The same upper always gives the same bytes. On a
        terminal, progress (entries, MiB, rate) shows on standard error unless --quiet.
        """
    )

    @Option(name: .short, help: ArgumentHelp("lowerdir=DIR[:DIR...],upperdir=DIR[,userxattr]", valueName: "options"))
    var o: [String] = []

    @Option(help: ArgumentHelp("The layer file to write ('-' for standard output).", valueName: "file"))
    var output: String

    @Option(help: "Compress the layer: none, gzip or zstd.")
    var compress = Choice(LayerCompression.none)

    @Flag(help: "Read the upper as kernel overlayfs does: '.wh.' names are plain files.")
    var kernelStrict = false

    @Flag(help: "Print only the result, never progress.")
    var quiet = false

    @Flag(help: "Print the result as one JSON object ({\"diffID\",\"digest\",\"size\",\"tarSize\",\"entries\"}).")
    var json = false

    func run() throws {
        let source = try LayerOptions.upperChanges(o, kernelStrict: kernelStrict)
        let toStdout = output == "-"
        let fd: Int32
        do { fd = toStdout ? 1 : try Sys.open(output, O_WRONLY | O_CREAT | O_TRUNC, 0o644) } catch {
            throw UnionFSError.io(error, "--output '\(output)': \(error)")
        }
        defer { if !toStdout { Sys.close(fd) } }
        let progress = Progress(enabled: !quiet, verb: "committed")
        let result: CommitResult
        do {
            result = try LayerCommit(source).write(to: fd, compression: compress.value, progress: progress.callback)
        } catch {
            progress.end()
            if !toStdout { try? Sys.unlink(output) }
            throw UnionFSError("commit failed", wrapping: error)
        }
        progress.end()
        let text = json
            ? "{\"diffID\":\"\(result.diffID)\",\"digest\":\"\(result.digest)\",\"size\":\(result.size),"
                + "\"tarSize\":\(result.tarSize),\"entries\":\(result.entries)}\n"
            : "diffID \(result.diffID)\ndigest \(result.digest)\nsize \(result.size)\n"
        if toStdout { printError(text.dropLast().description) } else { try writeStdout(text) }
    }
}

/// A one-line progress display on standard error, only when it is a terminal: entries and
/// bytes done and the rate, redrawn at most once a second; nothing at all in a pipe.
final class Progress {
    let enabled: Bool
    let verb: String
    private let start = Progress.now()
    private var lastDraw: Double = 0

    init(enabled: Bool, verb: String) {
        self.enabled = enabled && isatty(2) == 1
        self.verb = verb
    }

    var callback: LayerProgress? {
        guard enabled else { return nil }
        return { [self] entries, bytes in
            let now = Progress.now()
            guard now - lastDraw >= 1 else { return }
            lastDraw = now
            let rate = Double(bytes) / max(now - start, 0.001) / 1_048_576
            let line = "\r\u{1b}[K\(verb) \(entries) entries, \(bytes / 1_048_576) MiB, "
                + "\(Int(rate)).\(Int(rate * 10) % 10) MiB/s"
            _ = line.withCString { write(2, $0, strlen($0)) }
        }
    }

    /// Clears the progress line.
    func end() {
        guard enabled, lastDraw != 0 else { return }
        let clear = "\r\u{1b}[K"
        _ = clear.withCString { write(2, $0, strlen($0)) }
    }

    /// Seconds on the monotonic clock.
    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
