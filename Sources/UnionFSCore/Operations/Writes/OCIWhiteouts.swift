import Glibc
import SystemPackage

/// The write paths of an upper in the OCI form (`WhiteoutForm.oci`, where `mknod` of a whiteout
/// device is refused).
///
/// An entry and its `.wh.` marker may both exist for a moment: the entry is what the merged
/// directory shows, the marker still hides the lower name. So every change orders its steps to
/// keep each intermediate state right, as the device form does with one rename: a whiteout is
/// made before the entry it replaces goes, and the marker goes after an entry landed over it.
/// A crash between the steps leaves at worst a redundant marker next to an entry.
extension UnionFileSystem {
    /// What the upper holds under `name`: the entry, else a whiteout when `.wh.<name>` exists.
    func ociUpperEntry(_ name: borrowing FileName, in upper: LayerDir) -> UpperEntry {
        if let st = try? upper.stat(name) { return .entry(st) }
        return stack.hasOCIWhiteout(for: name, in: upper) ? .whiteout : .absent
    }

    /// Makes `name` a whiteout: the marker first, then the entry (a directory through the
    /// workdir, so it never shows half emptied) goes.
    func ociWhiteOut(_ name: borrowing FileName, in upper: LayerDir, current: UpperEntry) throws(Errno) {
        if case .whiteout = current { return }
        try OCIMarkers.withWhiteoutName(name) { (w) throws(Errno) in try OCIMarkers.create(w, in: upper) }
        if case .entry(let st) = current {
            try removeUpper(name, in: upper, isDirectory: st.st_mode & S_IFMT == S_IFDIR)
        }
    }

    /// Lands the staged entry `temp` at `name` (where the upper has no entry), then drops the
    /// marker that hid the lower name: the new entry, opaque if a directory, hides it now.
    func ociLand(temp: borrowing FileName, name: borrowing FileName, in upper: LayerDir) throws(Errno) {
        try Sys.renameat2(stack.staging!.fd, temp.cString, upper.fd, name.cString, Sys.renameNoReplace)
        try dropOCIWhiteout(name, in: upper)
    }

    /// Removes `.wh.<name>` from `upper` after an entry arrived at `name`.
    func dropOCIWhiteout(_ name: borrowing FileName, in upper: LayerDir) throws(Errno) {
        try OCIMarkers.withWhiteoutName(name) { (w) throws(Errno) in try OCIMarkers.remove(w, in: upper) }
    }

    /// A rename in the upper that leaves a whiteout at the source when asked: the marker first
    /// (the entry still shows), then the move, then the target's old marker goes.
    func ociMove(_ from: LayerDir, _ name: borrowing FileName, _ to: LayerDir,
                 _ newName: borrowing FileName, whiteout: Bool) throws(Errno) {
        if whiteout {
            try OCIMarkers.withWhiteoutName(name) { (w) throws(Errno) in try OCIMarkers.create(w, in: from) }
        }
        try Sys.renameat2(from.fd, name.cString, to.fd, newName.cString, 0)
        try dropOCIWhiteout(newName, in: to)
    }

    /// Marks an upper directory opaque with `.wh..wh..opq`.
    func ociSetOpaque(_ dir: LayerDir) throws(Errno) {
        try OCIMarkers.create(FileName(".wh..wh..opq"), in: dir)
    }

    /// Removes the `.wh.NAME` markers of an upper directory that became opaque (they hide
    /// nothing more); the opaque marker stays.
    func ociRemoveWhiteouts(in dir: LayerDir) throws(Errno) {
        var markers: [Name] = []
        try Sys.forEachEntry(in: dir.fd) { e in
            let n = Name(bytes: e.name)
            if n.hasPrefix(".wh.") && !n.hasPrefix(".wh..wh.") { markers.append(n) }
        }
        for m in markers {
            try m.withFileName { (c) throws(Errno) in try OCIMarkers.remove(c, in: dir) }
        }
    }

    /// A new name cannot start with `.wh.` in an OCI-form upper: it would read as a marker.
    @inline(__always)
    func checkStorable(_ name: borrowing FileName) throws(Errno) {
        if stack.ociUpper && name.hasPrefix(".wh.") { throw .invalidArgument }
    }
}
