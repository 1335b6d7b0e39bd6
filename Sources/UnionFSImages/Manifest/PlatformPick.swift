import UnionFS

extension Platform {
    /// The entries of an index meant for this platform: all of them when none says its platform
    /// (an OCI layout holding several named images), else the first that matches. `where` and
    /// `given` only shape the error (no match: which platforms there are, and how to choose).
    func pick(_ entries: [Descriptor], in what: String, given: Bool) throws(UnionFSError) -> [Descriptor] {
        let withPlatform = entries.filter { $0.platform != nil }
        if withPlatform.isEmpty { return entries }
        guard let first = withPlatform.first(where: { accepts($0.platform!) }) else {
            let have = Set(withPlatform.map { $0.platform!.description }).sorted().joined(separator: ", ")
            throw UnionFSError("\(what) has no image for \(self) (it has \(have))\(given ? "" : "; choose one with --platform")")
        }
        return [first]
    }
}
