import Foundation
import Glibc
import XCTest

/// Where things are and how to run them, for every test in this target.
enum TestEnvironment {
    /// The `unionfs-swift` executable the tests run, as root and as plain users (rootless tests
    /// run it as a throw-away user, rootless podman as its mount program): the built one when
    /// every directory above it lets others through, else a copy, with the embedding example
    /// beside it, in a directory of /tmp (a clone under /root, mode 0700, would otherwise fail
    /// every rootless test with EACCES).
    static let binary: String = {
        let built = builtBinary
        guard !everyoneCanReach(built) else { return built }
        let dir = "/tmp/unionfs-swift-tests-bin"
        mkdir(dir, 0o755)
        chmod(dir, 0o755)
        for name in ["unionfs-swift", "unionfs-embed-example"] {
            let source = dirname(built) + "/" + name
            guard FileManager.default.isExecutableFile(atPath: source) else { continue }
            // Copied under a unique name and renamed into place: concurrent runs never see a
            // half-written executable.
            let staged = "\(dir)/.\(name).\(getpid())"
            try? FileManager.default.removeItem(atPath: staged)
            guard (try? FileManager.default.copyItem(atPath: source, toPath: staged)) != nil else { return built }
            chmod(staged, 0o755)
            guard rename(staged, "\(dir)/\(name)") == 0 else { return built }
        }
        return "\(dir)/unionfs-swift"
    }()

    /// Whether a user other than root can run `path`: every directory above it searchable by others.
    static func everyoneCanReach(_ path: String) -> Bool {
        var dir = dirname(path)
        while true {
            var st = stat()
            guard stat(dir, &st) == 0, st.st_mode & 0o001 != 0 else { return false }
            if dir == "/" { return true }
            dir = dirname(dir)
        }
    }

    /// The built `unionfs-swift` executable: next to the test bundle (same build directory),
    /// else `<package root>/.build/debug/unionfs-swift`.
    static var builtBinary: String {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(TestEnvironment.dirname(exe) + "/unionfs-swift")
        }
        for b in Bundle.allBundles {
            candidates.append(TestEnvironment.dirname(b.bundlePath) + "/unionfs-swift")
        }
        candidates.append(packageRoot + "/.build/debug/unionfs-swift")
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        return candidates.last!
    }

    /// The package root, found from this file's path (Tests/UnionFSTests/Support/...).
    static var packageRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }

    static var isRoot: Bool { geteuid() == 0 }

    /// The directory part of an absolute path (NSString's path methods trap on some inputs here).
    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// The result of running a program to completion.
struct ProcessResult {
    var status: Int32
    /// True when the program was still running at the deadline and had to be killed.
    var timedOut: Bool
    var stdout: String
    var stderr: String

    /// stderr split into its non-empty lines.
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
}

/// A child process started with posix_spawn and reaped with waitpid (Foundation's Process on
/// Linux waits until every inheritor of its status socket has gone, which never happens when the
/// program leaves a daemon behind).
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    private var rawStatus: Int32?

    struct SpawnError: Error, CustomStringConvertible { let description: String }

    init(_ path: String, _ args: [String], environment: [String: String]? = nil,
         stdoutPath: String, stderrPath: String) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&fa, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        let env = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &fa, nil, argv, envp)
        guard rc == 0 else { throw SpawnError(description: "posix_spawn \(path): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// Reaps the child if it has exited; true while it runs.
    var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        if rawStatus != nil { return false }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid || (r < 0 && errno == ECHILD) { rawStatus = r == pid ? st : -1; return false }
        return true
    }

    /// The exit code; for a signal, 128 + signal number; nil while running.
    var exitStatus: Int32? {
        guard !isRunning else { return nil }
        lock.lock(); defer { lock.unlock() }
        let s = rawStatus ?? -1
        if s < 0 { return -1 }
        return s & 0x7f == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f)
    }

    /// Waits up to `timeout` seconds; true when the child has exited.
    func wait(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// SIGTERM, a bounded wait, then SIGKILL and another bounded wait.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if wait(timeout: 3) { return }
        kill(pid, SIGKILL)
        _ = wait(timeout: 3)
    }
}

/// Runs programs with a deadline: a test may fail, never hang.
enum Run {
    /// Runs `path args` and waits at most `timeout` seconds; past that the program is killed
    /// (SIGTERM, then SIGKILL) and `timedOut` is set.
    @discardableResult
    static func program(_ path: String, _ args: [String], timeout: TimeInterval = 10,
                        environment: [String: String]? = nil) throws -> ProcessResult {
        let dir = NSTemporaryDirectory() + "unionfs-run-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outPath = dir + "/out", errPath = dir + "/err"
        let p = try ChildProcess(path, args, environment: environment, stdoutPath: outPath, stderrPath: errPath)
        let timedOut = !p.wait(timeout: timeout)
        if timedOut { p.stop() }
        let o = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ProcessResult(status: p.exitStatus ?? -1, timedOut: timedOut, stdout: o, stderr: e)
    }
}

/// A fresh temporary directory per test, removed afterwards, plus cleanup actions that run in
/// reverse order in `tearDown` whatever the test did (unmounts first, then the directory).
class TempDirTestCase: XCTestCase {
    var tmp = ""
    private var cleanups: [() -> Void] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        tmp = "/tmp/unionfs-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        cleanups = []
    }

    override func tearDownWithError() throws {
        for c in cleanups.reversed() { c() }
        cleanups = []
        // Never delete below a mount that survived: that would delete layer contents through it.
        if !MountTable.entries().contains(where: { $0.mountPoint.hasPrefix(tmp + "/") || $0.mountPoint == tmp }) {
            try? FileManager.default.removeItem(atPath: tmp)
        } else {
            XCTFail("a mount below \(tmp) survived teardown")
        }
        try super.tearDownWithError()
    }

    /// Registers `body` to run at teardown (last registered runs first).
    func addCleanup(_ body: @escaping () -> Void) { cleanups.append(body) }

    /// Makes `tmp/relative` (with parents) and returns its absolute path.
    @discardableResult
    func makeDir(_ relative: String) throws -> String {
        let p = tmp + "/" + relative
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }
}
