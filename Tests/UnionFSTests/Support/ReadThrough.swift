import Glibc
import XCTest

/// The whole content of `path`, read with `read(2)` in 8 KiB steps (through a mount: the
/// kernel's reads, not one large one); empty, with a test failure, when it cannot be opened.
func readThrough(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        XCTFail("cannot open \(path): errno \(errno)", file: file, line: line)
        return []
    }
    defer { close(fd) }
    var out: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 8192)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { break }
        out += chunk[0..<n]
    }
    return out
}
