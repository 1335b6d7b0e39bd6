import Foundation

/// A reproducible random source (SplitMix64) for the model-checked and stress tests: a seed
/// printed with a failure replays the same operations.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<n` (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    /// The seed from the environment variable `name`, or a fresh one.
    static func seed(from name: String) -> UInt64 {
        if let s = ProcessInfo.processInfo.environment[name], let v = UInt64(s) { return v }
        return UInt64.random(in: 1..<(1 << 62))
    }
}

/// Short names for the errno values the tests count.
enum ErrnoName {
    static func of(_ e: Int32) -> String {
        let known: [Int32: String] = [
            EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", ENXIO: "ENXIO", EBADF: "EBADF", EACCES: "EACCES",
            EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
            EINVAL: "EINVAL", EMFILE: "EMFILE", ENOSPC: "ENOSPC", EMLINK: "EMLINK", ENAMETOOLONG: "ENAMETOOLONG",
            ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENODATA: "ENODATA", EOPNOTSUPP: "EOPNOTSUPP",
            ESTALE: "ESTALE", ENOTCONN: "ENOTCONN", EAGAIN: "EAGAIN", EFBIG: "EFBIG", EROFS: "EROFS",
        ]
        return known[e] ?? "errno\(e)"
    }
}
