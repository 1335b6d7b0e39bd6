import Foundation
import XCTest

/// The layering of docs/ARCHITECTURE.md, read from the sources: the build would accept a core
/// file importing libfuse as long as Package.swift lists it, so the imports themselves are checked.
final class LayeringTests: XCTestCase {
    /// Modules each target may not import (a target absent here may import what it declares).
    static let forbidden: [String: Set<String>] = [
        "UnionFSCore": ["CFuse3", "CArchive", "Crypto", "Foundation", "UnionFS", "UnionFSFuse", "UnionFSOCI", "UnionFSImages"],
        "UnionFSFuse": ["CArchive", "Crypto", "Foundation", "UnionFS", "UnionFSOCI", "UnionFSImages"],
        "UnionFSOCI": ["CFuse3", "Foundation", "UnionFS", "UnionFSFuse", "UnionFSImages"],
        "UnionFSImages": ["CFuse3"],
        "UnionFSC": ["CFuse3", "CArchive", "Crypto", "Foundation"],
        "unionfs-swift": ["CFuse3", "CArchive"],
    ]

    func testEachTargetImportsOnlyWhatItsLayerAllows() throws {
        var checked = 0
        for (target, banned) in Self.forbidden {
            for (file, module) in try Self.imports(of: target) where banned.contains(module) {
                XCTFail("\(file) imports \(module), which \(target) may not (docs/ARCHITECTURE.md)")
            }
            checked += 1
        }
        XCTAssertEqual(checked, Self.forbidden.count)
    }

    /// CFuse3 is imported by UnionFSFuse and nothing else.
    func testOnlyTheFuseTargetImportsLibfuse() throws {
        let sources = TestEnvironment.packageRoot + "/Sources"
        for target in try FileManager.default.contentsOfDirectory(atPath: sources) where !target.hasPrefix("C") && target != "UnionFSFuse" {
            for (file, module) in try Self.imports(of: target) where module == "CFuse3" {
                XCTFail("\(file) imports CFuse3: only UnionFSFuse may")
            }
        }
        XCTAssertFalse(try Self.imports(of: "UnionFSFuse").filter { $0.module == "CFuse3" }.isEmpty)
    }

    /// Every `import` (with or without attributes such as `@_exported`) of every Swift file of `target`.
    static func imports(of target: String) throws -> [(file: String, module: String)] {
        let root = TestEnvironment.packageRoot + "/Sources/" + target
        guard let walk = FileManager.default.enumerator(atPath: root) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: root])
        }
        var found: [(String, String)] = []
        var files = 0
        while let rel = walk.nextObject() as? String {
            guard rel.hasSuffix(".swift") else { continue }
            files += 1
            let text = try String(contentsOfFile: root + "/" + rel, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").filter { !$0.hasPrefix("@") }
                guard words.count >= 2, words[0] == "import" else { continue }
                // `import struct Glibc.stat` and `import Glibc.stat` name the module first.
                let kinds: Set<Substring> = ["struct", "class", "enum", "protocol", "typealias", "func", "var", "let"]
                let name = kinds.contains(words[1]) && words.count >= 3 ? words[2] : words[1]
                found.append((target + "/" + rel, String(name.split(separator: ".")[0])))
            }
        }
        if files == 0 { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: root]) }
        return found
    }
}
