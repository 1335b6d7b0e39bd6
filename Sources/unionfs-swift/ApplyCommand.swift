import ArgumentParser
import Glibc
import UnionFS

/// `unionfs-swift apply [--flatten] TAR TARGETDIR`: unpack an OCI layer tar, all or nothing.
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Unpack an OCI layer tar (plain, gzip or zstd) into a directory.",
        discussion: """
        Without --flatten, TARGETDIR must be new or empty and becomes a layer for lowerdir=:
        whiteouts become 0:0 devices, opaque markers the overlay.opaque xattr. With --flatten,
        the layer is applied onto the tree in TARGETDIR: whiteouts delete what they name.
        A tar with unsafe names or links is rejected and TARGETDIR is left as it was.
        Prints 'entries N' and 'bytes N' (or one JSON object with --json); on a terminal,
        progress shows on standard error unless --quiet.
        """
    )

    @Flag(help: "Apply onto the existing tree in TARGETDIR instead of making a layer dir.")
    var flatten = false

    @Flag(help: "Mark opaque directories with user.overlay.opaque (for userxattr mounts).")
    var userxattr = false

    @Flag(help: "Print only the result, never progress.")
    var quiet = false

    @Flag(help: "Print the result as one JSON object ({\"entries\",\"bytes\"}).")
    var json = false

    @Argument(help: "The layer tar.")
    var tar: String

    @Argument(help: "The target directory.")
    var target: String

    func run() throws {
        let progress = Progress(enabled: !quiet, verb: "applied")
        let mode: ApplyMode = flatten ? .flatten : .layer(userxattr ? .user : .trusted)
        let result: ApplyResult
        do {
            result = try LayerApply.apply(tar: tar, to: target, mode: mode, progress: progress.callback)
        } catch {
            progress.end()
            throw error
        }
        progress.end()
        try writeStdout(json ? "{\"entries\":\(result.entries),\"bytes\":\(result.bytes)}\n"
                             : "entries \(result.entries)\nbytes \(result.bytes)\n")
    }
}
