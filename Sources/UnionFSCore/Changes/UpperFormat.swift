import Glibc
import SystemPackage

/// Which markers an upper directory is read with.
public enum UpperFormat: Sendable, Equatable {
    /// Every form in the wild: kernel overlayfs (whiteout devices, `trusted.` or
    /// `user.overlay.opaque`), and fuse-overlayfs, which falls back to `.wh.NAME` files and
    /// `.wh..wh..opq` when it cannot make devices, and may mark opacity with
    /// `user.fuseoverlayfs.opaque`.
    case any
    /// Exactly what kernel overlayfs reads with this namespace: `.wh.` names are plain files.
    case kernel(XattrNamespace)
}

/// One entry of an upper directory, with the markers read.
package enum UpperItem {
    case entry(Name, stat)
    /// A whiteout for this name (a 0:0 device, or `.wh.NAME` in `.any`).
    case whiteout(Name)

    var name: Name {
        switch self {
        case .entry(let n, _), .whiteout(let n): return n
        }
    }
}

/// Reads upper directories in one `UpperFormat`.
package struct UpperReader: Sendable {
    let format: UpperFormat

    /// The entries of `dir`, sorted by name bytes, with whiteouts recognised and the opaque
    /// marker file left out. A `.wh.NAME` next to a real `NAME` is ignored: the real entry is
    /// what the merged directory shows.
    package func items(in dir: LayerDir) throws(Errno) -> [UpperItem] {
        let oci = format == .any
        var real: [Name: stat] = [:]
        var whiteouts: [Name] = []
        try Sys.forEachEntry(in: dir.fd) { (e) throws(Errno) in
            let name = Name(bytes: e.name)
            if oci && name.hasPrefix(".wh.") {
                if name.hasPrefix(".wh..wh.") { return }  // .wh..wh..opq and AUFS metadata
                if let hidden = name.dropFirst(4) { whiteouts.append(hidden) }
                return
            }
            let st = try dir.stat(e.fileName)
            if st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 {
                whiteouts.append(name)
            } else {
                real[name] = st
            }
        }
        var items = real.map { UpperItem.entry($0.key, $0.value) }
        for w in Set(whiteouts) where real[w] == nil { items.append(.whiteout(w)) }
        return items.sorted { $0.name.bytes.lexicographicallyPrecedes($1.name.bytes) }
    }

    /// True when the upper directory `dir` hides what lies below it.
    package func isOpaque(_ dir: LayerDir) -> Bool {
        let names: [String]
        switch format {
        case .kernel(let ns): names = [ns.overlayPrefix + "opaque"]
        case .any: names = ["trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"]
        }
        for n in names {
            let probe = n.withCString { dir.xattrPrefix($0, limit: 2) }
            if probe == .value([0x79]) { return true }  // exactly "y"
        }
        return format == .any && (try? dir.stat(FileName(".wh..wh..opq"))) != nil
    }
}
