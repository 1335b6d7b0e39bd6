import Glibc
import UnionFS

extension Platform {
    /// The platform of this machine, in OCI terms (uname's machine mapped to GOARCH names).
    static var host: Platform {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return Platform(architecture: "amd64", os: "linux")
        case "aarch64", "arm64": return Platform(architecture: "arm64", os: "linux")
        case "armv7l": return Platform(architecture: "arm", os: "linux", variant: "v7")
        case "armv6l": return Platform(architecture: "arm", os: "linux", variant: "v6")
        case "i386", "i686": return Platform(architecture: "386", os: "linux")
        default: return Platform(architecture: machine, os: "linux")
        }
    }

    /// Parses `os/arch[/variant]` as `--platform` gives it.
    static func parse(_ text: String) throws(UnionFSError) -> Platform {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw UnionFSError("--platform '\(text)': expected OS/ARCH or OS/ARCH/VARIANT")
        }
        return Platform(architecture: parts[1], os: parts[0], variant: parts.count == 3 ? parts[2] : nil)
    }

    /// Whether an index entry for `other` serves a request for `self` (no variant asked: any).
    func accepts(_ other: Platform) -> Bool {
        other.os == os && other.architecture == architecture && (variant == nil || other.variant == variant)
    }
}
