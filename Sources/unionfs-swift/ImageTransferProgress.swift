#if canImport(UnionFSRegistry)
import Foundation
import Glibc
import UnionFSImages
import UnionFSRegistry

/// Shows a pull's or push's events: a bar per layer with size, rate and ETA on a terminal
/// (redrawn at most ten times a second), one line per finished layer otherwise, JSON objects
/// (one a line, on stdout) with --json, nothing with --quiet. Events come from several
/// threads; `mutex` serialises them (no other lock is taken under it).
final class TransferProgress: @unchecked Sendable {
    enum Mode { case auto, quiet, json }

    struct Row {
        var info: LayerInfo
        var bytes: Int64 = 0
        var status: String? = nil
        var started: Double? = nil
        var ended: Double? = nil
    }

    let mode: Mode
    let terminal: Bool
    let verb: String
    private let mutex = NSLock()
    private var rows: [Int: Row] = [:]
    private var count = 0
    private var drawn = 0
    private var lastDraw = 0.0
    private var lastJSON: [Int: Double] = [:]

    init(mode: Mode, verb: String) {
        self.mode = mode
        self.verb = verb
        terminal = isatty(2) == 1
    }

    var handle: RegistryEvents { { [self] e in mutex.lock(); event(e); mutex.unlock() } }

    /// Runs the transfer, leaving the display tidy whatever happens.
    func run<T>(_ body: () throws -> T) rethrows -> T {
        defer { mutex.lock(); if mode == .auto && terminal { draw() }; mutex.unlock() }
        return try body()
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func event(_ e: RegistryEvent) {
        switch mode {
        case .quiet: return
        case .json: json(e)
        case .auto:
            update(e)
            if terminal {
                let t = Self.now()
                if case .layerProgress = e, t - lastDraw < 0.1 { return }
                lastDraw = t
                draw()
            } else {
                line(e)
            }
        }
    }

    private func update(_ e: RegistryEvent) {
        let t = Self.now()
        switch e {
        case .resolved(_, _, let layers):
            count = layers.count
            for l in layers { rows[l.index] = Row(info: l) }
        case .layerExists(let l):
            rows[l.index, default: Row(info: l)].status = "Already exists"
        case .layerProgress(let l, let bytes):
            rows[l.index, default: Row(info: l)].bytes = bytes
            if rows[l.index]!.started == nil { rows[l.index]!.started = t }
        case .layerDone(let l, let how):
            rows[l.index, default: Row(info: l)].bytes = l.size
            rows[l.index]!.status = how == "pulled" ? "Pull complete" : how == "pushed" ? "Pushed" : how.prefix(1).uppercased() + how.dropFirst()
            rows[l.index]!.ended = t
        case .retrying(let l, let attempt, let reason):
            if let l { rows[l.index, default: Row(info: l)].status = "retrying (\(attempt)): \(reason)" }
        case .finished:
            break
        }
    }

    private func rate(_ r: Row) -> Double? {
        guard let s = r.started else { return nil }
        let d = (r.ended ?? Self.now()) - s
        return d > 0.05 ? Double(r.bytes) / d : nil
    }

    private func draw() {
        var out = drawn > 0 ? "\u{1b}[\(drawn)A" : ""
        let ordered = rows.values.sorted { $0.info.index < $1.info.index }
        for r in ordered {
            var text = r.info.digest.short + "  "
            if let s = r.status, r.ended != nil || s == "Already exists" || s.hasPrefix("retrying") {
                text += s
                if r.ended != nil, let rt = rate(r) { text += "  \(humanSize(r.info.size)) at \(humanSize(Int64(rt)))/s" }
            } else {
                let width = 30
                let f = r.info.size > 0 ? min(1, Double(r.bytes) / Double(r.info.size)) : 0
                let filled = Int(f * Double(width))
                text += "[" + String(repeating: "=", count: filled) + (filled < width ? ">" : "")
                    + String(repeating: " ", count: max(0, width - filled - 1)) + "]"
                text += "  \(humanSize(r.bytes)) / \(humanSize(r.info.size))"
                if let rt = rate(r), rt > 0 {
                    text += "  \(humanSize(Int64(rt)))/s  ETA \(Int(Double(r.info.size - r.bytes) / rt))s"
                }
            }
            out += "\r\u{1b}[K" + text + "\n"
        }
        drawn = ordered.count
        FileHandle.standardError.write(Data(out.utf8))
    }

    private func line(_ e: RegistryEvent) {
        func name(_ l: LayerInfo) -> String {
            l.index < count ? "layer \(l.index + 1)/\(count) \(l.digest.short)" : "config \(l.digest.short)"
        }
        var text: String
        switch e {
        case .resolved(let ref, let manifest, let layers): text = "\(ref): manifest \(manifest), \(layers.count) layers"
        case .layerExists(let l): text = "\(name(l)): Already exists"
        case .layerDone(let l, let how):
            text = "\(name(l)): \(how) \(humanSize(l.size))"
            if let r = rows[l.index], let rt = rate(r) { text += " at \(humanSize(Int64(rt)))/s" }
        case .retrying(let l, let attempt, let reason): text = "\(l.map(name) ?? "request"): retrying (\(attempt)): \(reason)"
        case .layerProgress, .finished: return
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    private func json(_ e: RegistryEvent) {
        var o: [String: Any]
        func layer(_ l: LayerInfo) -> [String: Any] { ["layer": l.index, "digest": l.digest.description, "size": l.size] }
        switch e {
        case .resolved(let ref, let manifest, let layers):
            o = ["event": "resolved", "reference": ref, "manifest": manifest.description,
                 "layers": layers.map { ["digest": $0.digest.description, "size": $0.size] as [String: Any] }]
        case .layerExists(let l): o = layer(l); o["event"] = "exists"
        case .layerProgress(let l, let bytes):
            let t = Self.now()
            if t - (lastJSON[l.index] ?? 0) < 0.25 { return }
            lastJSON[l.index] = t
            o = layer(l); o["event"] = "progress"; o["bytes"] = bytes
        case .layerDone(let l, let how): o = layer(l); o["event"] = "done"; o["how"] = how
        case .retrying(let l, let attempt, let reason):
            o = l.map(layer) ?? [:]; o["event"] = "retry"; o["attempt"] = attempt; o["reason"] = reason
        case .finished(let ref, let manifest): o = ["event": "finished", "reference": ref, "manifest": manifest.description]
        }
        o["operation"] = verb
        guard let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}
#endif
