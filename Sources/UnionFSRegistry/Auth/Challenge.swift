/// A `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"` (RFC 7235 auth-params, quoted or not).
struct Challenge: Equatable {
    var scheme: String
    var parameters: [String: String]

    /// The first challenge of a header value this client can answer (Bearer, then Basic).
    static func parse(_ header: String) -> Challenge? {
        var all: [Challenge] = []
        var current: Challenge? = nil
        var s = Substring(header)
        func skipSpace() { while let c = s.first, c == " " || c == "\t" || c == "," { s.removeFirst() } }
        while true {
            skipSpace()
            guard !s.isEmpty else { break }
            let token = s.prefix { $0 != " " && $0 != "=" && $0 != "," }
            s = s.dropFirst(token.count)
            if s.first == "=" {
                // A parameter of the current challenge.
                s.removeFirst()
                var value = ""
                if s.first == "\"" {
                    s.removeFirst()
                    while let c = s.first, c != "\"" {
                        s.removeFirst()
                        if c == "\\", let n = s.first { value.append(n); s.removeFirst() } else { value.append(c) }
                    }
                    if !s.isEmpty { s.removeFirst() }
                } else {
                    value = String(s.prefix { $0 != "," && $0 != " " })
                    s = s.dropFirst(value.count)
                }
                current?.parameters[token.lowercased()] = value
            } else {
                if let c = current { all.append(c) }
                current = Challenge(scheme: token.lowercased(), parameters: [:])
            }
        }
        if let c = current { all.append(c) }
        return all.first { $0.scheme == "bearer" } ?? all.first { $0.scheme == "basic" }
    }
}
