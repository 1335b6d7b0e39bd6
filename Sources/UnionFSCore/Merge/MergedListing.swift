import Glibc
import SystemPackage

/// One entry of a merged directory listing.
public struct MergedEntry: Sendable {
    public let name: Name
    /// `DT_*` type of the topmost occurrence.
    public let type: UInt8
    /// The inode number the mount reports for it (equal to its `st_ino`).
    public let ino: UInt64
    /// Index in the stack of the layer holding the topmost occurrence (-1 for `.` and `..`).
    public let layer: Int

    init(name: Name, type: UInt8, ino: UInt64, layer: Int = -1) {
        self.name = name
        self.type = type
        self.ino = ino
        self.layer = layer
    }
}

extension LayerStack {
    /// The merged listing of a directory whose layers are `layers` (top first): the union of
    /// names, first occurrence wins, whiteouts and the names they hide left out, the OCI markers
    /// (`.wh.*`) of layers in that form read and hidden. One `getdents64` pass per layer; an `fstatat`
    /// only for character devices (whiteout check) and entries of unknown type.
    ///
    /// `.` and `..` are not included.
    public func mergedListing(of layers: [DirectoryPart]) throws(Errno) -> [MergedEntry] {
        var entries: [MergedEntry] = []
        var seen = Set<Name>()
        // Room for every layer's names at once: growing the set step by step hashes every name
        // again at each step (an eighth of a 29k-entry merge). About 24 bytes of a directory's
        // size per entry on ext4 and tmpfs; a guess elsewhere, capped.
        var room = 0
        for dl in layers {
            if let size = try? dl.dir.stat().st_size, size > 4096 { room += min(Int(size) / 24, 1 << 20) }
        }
        if room > 0 {
            seen.reserveCapacity(room)
            entries.reserveCapacity(room)
        }
        var hiddenBelow: [Name] = []
        for dl in layers {
            let isLower = !self.layers[dl.layer].isUpper
            let oci = readsOCI(dl.layer)
            let device = self.layers[dl.layer].device
            hiddenBelow.removeAll(keepingCapacity: true)
            try Sys.forEachEntry(in: dl.dir.fd) { (e) throws(Errno) in
                if oci && e.name.count >= 4 && e.name[0] == 0x2e && e.name[1] == 0x77
                    && e.name[2] == 0x68 && e.name[3] == 0x2e {
                    // ".wh..wh..opq" only marks opacity (read at lookup); ".wh.X" hides X below.
                    if e.name.count > 4 && !isOpaqueMarker(e.name) {
                        hiddenBelow.append(Name(bytes: UnsafeRawBufferPointer(rebasing: e.name.dropFirst(4))))
                    }
                    return
                }
                let name = Name(bytes: e.name)
                guard seen.insert(name).inserted else { return }
                var type = e.type
                var st: stat? = nil
                if type == UInt8(DT_UNKNOWN) || type == UInt8(DT_CHR) {
                    let s = try dl.dir.stat(e.fileName)
                    st = s
                    type = UInt8(truncatingIfNeeded: (s.st_mode & S_IFMT) >> 12)
                    if s.st_mode & S_IFMT == S_IFCHR && s.st_rdev == 0 { return }
                }
                if isLower && dl.holdsXattrWhiteouts && type == UInt8(DT_REG) {
                    let s: stat
                    if let known = st { s = known } else { s = try dl.dir.stat(e.fileName) }
                    if s.st_size == 0 && isXattrWhiteout(e.fileName, in: dl.dir) { return }
                }
                entries.append(MergedEntry(name: name, type: type,
                                           ino: inodes.reported(FileID(device: device, inode: e.ino)),
                                           layer: dl.layer))
            }
            for n in hiddenBelow { seen.insert(n) }
        }
        return entries
    }

    private func isOpaqueMarker(_ name: UnsafeRawBufferPointer) -> Bool {
        let marker: StaticString = ".wh..wh..opq"
        return name.count == marker.utf8CodeUnitCount
            && memcmp(name.baseAddress!, marker.utf8Start, name.count) == 0
    }
}
