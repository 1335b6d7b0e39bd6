import ArgumentParser

/// A command-line value that is one of a library enum's cases, spelled by its raw value.
///
/// The CLI's own type conforms to `ExpressibleByArgument`, so the library's enums
/// (`LayerCompression`, `ArchiveFormat`) need no retroactive conformance to a protocol of
/// ArgumentParser: neither module owns both, and a later conformance in either would clash.
struct Choice<Value: RawRepresentable & CaseIterable & Sendable>: ExpressibleByArgument, Sendable
where Value.RawValue == String {
    let value: Value

    init(_ value: Value) { self.value = value }

    init?(argument: String) {
        guard let value = Value(rawValue: argument) else { return nil }
        self.value = value
    }

    var defaultValueDescription: String { value.rawValue }

    static var allValueStrings: [String] { Value.allCases.map(\.rawValue) }
}
