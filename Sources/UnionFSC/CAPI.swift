import Glibc
import Synchronization
import SystemPackage
import UnionFS

// The C API declared in include/unionfs.h. Each function catches every error, records a
// one-line message for the calling thread, and returns an errno value: nothing escapes to C.
// A `UnionFSError` gives its own errno (`UnionFSError.errno`: the underlying one for I/O, so a
// full disk is ENOSPC), an `Errno` its value, anything else EIO.

/// The last error message of each thread. Lock order: leaf lock.
private let lastErrors = Mutex<[UInt: String]>([:])

private func fail(_ message: String, _ code: Int32) -> Int32 {
    lastErrors.withLock { $0[UInt(pthread_self())] = message }
    return code
}

private func string(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

/// Builds a mount option string, escaping commas and backslashes in paths (the option parser
/// reads `\,` and `\\` as escapes: a path's own backslash before a comma or another
/// backslash, or at its end, would otherwise be taken for one).
package func optionString(lowerdirs: String, upperdir: String?, workdir: String?, extra: String?) -> String {
    func esc(_ s: String) -> String {
        var o = ""
        for c in s {
            if c == "," || c == "\\" { o.append("\\") }
            o.append(c)
        }
        return o
    }
    var parts = ["lowerdir=" + esc(lowerdirs)]
    if let upperdir { parts.append("upperdir=" + esc(upperdir)) }
    if let workdir { parts.append("workdir=" + esc(workdir)) }
    if let extra, !extra.isEmpty { parts.append(extra) }
    return parts.joined(separator: ",")
}

@_cdecl("unionfs_mount_start")
public func unionfs_mount_start(_ lowerdirs: UnsafePointer<CChar>?, _ upperdir: UnsafePointer<CChar>?,
                                _ workdir: UnsafePointer<CChar>?, _ mountpoint: UnsafePointer<CChar>?,
                                _ options: UnsafePointer<CChar>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let lower = string(lowerdirs), let mp = string(mountpoint), let out else {
        return fail("lowerdirs, mountpoint and out are required", EINVAL)
    }
    do {
        let opts = try MountOptions.parse([optionString(lowerdirs: lower, upperdir: string(upperdir),
                                                        workdir: string(workdir), extra: string(options))])
        let mount = try UnionMount(opts.plan(), at: mp)
        out.pointee = OpaquePointer(Unmanaged.passRetained(mount).toOpaque())
        return 0
    } catch let e as UnionFSError {
        return fail(e.message, e.errno)
    } catch {
        return fail("\(error)", EIO)
    }
}

@_cdecl("unionfs_mount_stop")
public func unionfs_mount_stop(_ mount: OpaquePointer?) -> Int32 {
    guard let mount else { return fail("mount handle is NULL", EINVAL) }
    let m = Unmanaged<UnionMount>.fromOpaque(UnsafeRawPointer(mount)).takeRetainedValue()
    m.unmount()
    return 0
}

@_cdecl("unionfs_changes")
public func unionfs_changes(_ lowerdirs: UnsafePointer<CChar>?, _ upperdir: UnsafePointer<CChar>?,
                            _ callback: (@convention(c) (CChar, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32)?,
                            _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let lower = string(lowerdirs), let upper = string(upperdir), let callback else {
        return fail("lowerdirs, upperdir and callback are required", EINVAL)
    }
    do {
        let opts = try MountOptions.parse(["lowerdir=" + lower])
        let changes = try UpperChanges(lowerdirs: opts.stack.lowerdirs, upperdir: upper).changes()
        for c in changes {
            var bytes = c.pathBytes
            bytes.append(0)
            let kind = CChar(c.kind.rawValue.utf8.first!)
            let stop = bytes.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { callback(kind, $0.baseAddress, context) }
            }
            if stop != 0 { break }
        }
        return 0
    } catch let e as UnionFSError {
        return fail(e.message, e.errno)
    } catch let e as Errno {
        return fail("\(e)", e.rawValue)
    } catch {
        return fail("\(error)", EIO)
    }
}

@_cdecl("unionfs_commit")
public func unionfs_commit(_ lowerdirs: UnsafePointer<CChar>?, _ upperdir: UnsafePointer<CChar>?,
                           _ output: UnsafePointer<CChar>?, _ compression: UnsafePointer<CChar>?,
                           _ diffID: UnsafeMutablePointer<CChar>?, _ digest: UnsafeMutablePointer<CChar>?) -> Int32 {
    guard let lower = string(lowerdirs), let upper = string(upperdir), let output else {
        return fail("lowerdirs, upperdir and output are required", EINVAL)
    }
    let comp: LayerCompression
    switch string(compression) ?? "" {
    case "": comp = .none
    case let name: guard let c = LayerCompression(rawValue: name) else {
        return fail("unknown compression '\(name)' (gzip or zstd)", EINVAL)
    }; comp = c
    }
    let fd: Int32
    do { fd = try Sys.open(String(cString: output), O_WRONLY | O_CREAT | O_TRUNC, 0o644) } catch {
        return fail("cannot create '\(String(cString: output))': \(error)", error.rawValue)
    }
    defer { Sys.close(fd) }
    do {
        let opts = try MountOptions.parse(["lowerdir=" + lower])
        let result = try LayerCommit(UpperChanges(lowerdirs: opts.stack.lowerdirs, upperdir: upper))
            .write(to: fd, compression: comp)
        for (dst, value) in [(diffID, result.diffID.description), (digest, result.digest.description)] {
            guard let dst else { continue }
            let bytes = Array(value.utf8.prefix(71))
            for (i, b) in bytes.enumerated() { dst[i] = CChar(bitPattern: b) }
            dst[bytes.count] = 0
        }
        return 0
    } catch let e as UnionFSError {
        return fail(e.message, e.errno)
    } catch let e as Errno {
        return fail("\(e)", e.rawValue)
    } catch {
        return fail("\(error)", EIO)
    }
}

@_cdecl("unionfs_apply")
public func unionfs_apply(_ tar: UnsafePointer<CChar>?, _ target: UnsafePointer<CChar>?, _ flatten: Int32) -> Int32 {
    guard let tarPath = string(tar), let targetPath = string(target) else {
        return fail("tar and target are required", EINVAL)
    }
    do {
        _ = try LayerApply.apply(tar: tarPath, to: targetPath, mode: flatten != 0 ? .flatten : .layer(.trusted))
        return 0
    } catch {
        return fail(error.message, error.errno)
    }
}

@_cdecl("unionfs_last_error")
public func unionfs_last_error(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
    let message = lastErrors.withLock { $0[UInt(pthread_self())] } ?? ""
    let bytes = Array(message.utf8)
    if let buffer, size > 0 {
        let n = min(bytes.count, size - 1)
        for i in 0..<n { buffer[i] = CChar(bitPattern: bytes[i]) }
        buffer[n] = 0
    }
    return bytes.count
}
