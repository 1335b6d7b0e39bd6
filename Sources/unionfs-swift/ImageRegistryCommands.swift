import ArgumentParser
import Glibc
import UnionFS
import UnionFSImages

// The registry commands. The registry client (UnionFSRegistry, on swift-nio) is built by
// SwiftPM only; the CMake build (library, C API, CLI) leaves networking out, and there these
// commands exist but fail with a clear message instead of doing nothing.
#if canImport(UnionFSRegistry)
import UnionFSRegistry
#endif

/// Options for talking to a registry.
struct RegistryOptionGroup: ParsableArguments {
    @Option(name: .customLong("tls-verify"), help: ArgumentHelp("Verify the registry's TLS certificate (false also allows plain HTTP).", valueName: "bool"))
    var tlsVerify = true
    @Option(name: .customLong("cert-dir"), help: ArgumentHelp("Directory of CA certificates (*.crt) and a client *.cert/*.key pair.", valueName: "dir"))
    var certDir: String?
    @Option(name: .customLong("authfile"), help: ArgumentHelp("Credentials file to use instead of podman's auth.json and ~/.docker/config.json.", valueName: "file"))
    var authFile: String?
    @Option(help: ArgumentHelp("Credentials for this command.", valueName: "user:password"))
    var creds: String?
    @Option(help: "Attempts after the first for 5xx answers and dropped connections.")
    var retry = 3
    @Option(name: .customLong("retry-delay"), help: ArgumentHelp("First retry delay in seconds (doubling after).", valueName: "seconds"))
    var retryDelay = 1.0
    @Option(help: "Layers transferred at once.")
    var parallel = 3
}

/// How progress is shown: bars on a terminal, a line per layer otherwise, JSON events, or nothing.
struct ProgressOptionGroup: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only the result, never progress.")
    var quiet = false
    @Flag(help: "Print progress as JSON events, one object a line, on stdout.")
    var json = false
}

#if canImport(UnionFSRegistry)
extension RegistryOptionGroup {
    func options(platform: String? = nil) throws -> RegistryOptions {
        var o = RegistryOptions()
        o.tlsVerify = tlsVerify
        o.certDir = certDir
        o.authFile = authFile
        if let creds {
            guard let colon = creds.firstIndex(of: ":") else { throw ValidationError("--creds takes USER:PASSWORD") }
            o.credentials = Credentials(username: String(creds[..<colon]), password: String(creds[creds.index(after: colon)...]))
        }
        o.retries = max(0, retry)
        o.retryDelay = max(0, retryDelay)
        o.parallel = max(1, parallel)
        o.platform = platform
        return o
    }
}
#else
/// The error every registry command gives in a build without the registry client.
let noRegistrySupport = ConfigurationError("this build of unionfs-swift has no registry support (the CMake build leaves networking out): build with SwiftPM (swift build) for image pull, push, login and logout")
#endif

struct ImagePullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Pull an image from a registry into the store ([REGISTRY/]REPO[:TAG|@sha256:DIGEST]).",
        discussion: """
        Only layers that neither the store nor an --additional-store has are fetched, several at \
        once, each unpacked while it downloads and checked against its digests. Short names are \
        Docker's: 'alpine' is docker.io/library/alpine:latest; a first component with '.' or ':', \
        or 'localhost', is a registry. On error the layers already complete are kept (pull again).
        """
    )
    @OptionGroup var storeOption: StoreOption
    @OptionGroup var registry: RegistryOptionGroup
    @OptionGroup var output: ProgressOptionGroup
    @Option(help: ArgumentHelp("Pick this platform from a manifest list (default: this machine's).", valueName: "os/arch[/variant]"))
    var platform: String?
    @Argument(help: "The image reference.")
    var reference: String

    func run() throws {
        #if canImport(UnionFSRegistry)
        let store = try storeOption.open()
        let progress = TransferProgress(mode: output.json ? .json : output.quiet ? .quiet : .auto, verb: "pull")
        let records = try progress.run {
            try Registry.pull(reference, into: store, options: try registry.options(platform: platform), events: progress.handle)
        }
        if !output.json {
            try writeStdout(records.map { "Pulled image: \($0.name ?? $0.config.description) (ID \($0.config.short), manifest \($0.manifest))\n" }.joined())
        }
        #else
        throw noRegistrySupport
        #endif
    }
}

struct ImagePushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push an image of the store to a registry (only the blobs it lacks).",
        discussion: "Prints the pushed manifest's digest. An image from `image commit` pushes as it is."
    )
    @OptionGroup var storeOption: StoreOption
    @OptionGroup var registry: RegistryOptionGroup
    @OptionGroup var output: ProgressOptionGroup
    @Option(name: .customLong("chunk-size"), help: ArgumentHelp("Upload blobs larger than this in chunks of this many bytes.", valueName: "bytes"))
    var chunkSize = 16 << 20
    @Argument(help: "The image name or ID in the store.")
    var image: String
    @Argument(help: "Where to push it (default: IMAGE read as a reference).")
    var destination: String?

    func run() throws {
        #if canImport(UnionFSRegistry)
        let store = try storeOption.open()
        let progress = TransferProgress(mode: output.json ? .json : output.quiet ? .quiet : .auto, verb: "push")
        let digest = try progress.run {
            var options = try registry.options()
            options.chunkSize = max(1, chunkSize)
            return try Registry.push(image, to: destination, from: store, options: options, events: progress.handle)
        }
        if !output.json { try writeStdout("\(digest)\n") }
        #else
        throw noRegistrySupport
        #endif
    }
}

struct ImageLoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Check credentials with a registry and file them where podman and skopeo read them.",
        discussion: "Written to --authfile, else $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json."
    )
    @OptionGroup var registry: RegistryOptionGroup
    @Option(name: .shortAndLong, help: "The user name.")
    var username: String
    @Option(name: .shortAndLong, help: "The password (prefer --password-stdin: arguments show in ps).")
    var password: String?
    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input.")
    var passwordStdin = false
    @Argument(help: "The registry (host[:port]).")
    var server: String

    func run() throws {
        #if canImport(UnionFSRegistry)
        var secret = password
        if passwordStdin {
            var line = ""
            while let l = readLine(strippingNewline: true) { line += l; break }
            secret = line
        }
        guard let secret, !secret.isEmpty else { throw ValidationError("give --password-stdin (or --password)") }
        let path = try Registry.login(server, credentials: Credentials(username: username, password: secret),
                                      options: try registry.options())
        try writeStdout("Login Succeeded (credentials in \(path))\n")
        #else
        throw noRegistrySupport
        #endif
    }
}

struct ImageLogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Remove the credentials filed for a registry.")
    @OptionGroup var registry: RegistryOptionGroup
    @Argument(help: "The registry (host[:port]).")
    var server: String

    func run() throws {
        #if canImport(UnionFSRegistry)
        let path = try Registry.logout(server, options: try registry.options())
        try writeStdout("Removed login credentials for \(server) from \(path)\n")
        #else
        throw noRegistrySupport
        #endif
    }
}
