import Foundation
import Glibc
import UnionFS

/// One layer blob arriving as a byte stream, unpacked while it arrives: each chunk is written
/// to the blob file (the blob the store keeps for `save` and `push`, landed by rename) and into
/// a FIFO that the unpacker reads on its own thread, through the same checked path as `load`
/// (decompression, blob digest and size, diffID, hostile names), staged and landed as `load`
/// lands layers. No other copy of the blob is made, and a full FIFO holds the writer back, so
/// memory stays bounded whatever the blob's size.
///
/// `write` may be called from one thread at a time; `finish` or `abandon` ends it.
public final class LayerReceiver: @unchecked Sendable {
    public let layer: IncomingImage.Layer
    /// Blob bytes written so far: where a resumed download starts.
    public private(set) var received: Int64 = 0
    private let image: IncomingImage
    private let blobPath: String
    private let fifoPath: String
    private var blobFd: Int32 = -1
    private var writeFd: Int32 = -1
    private var lock: FileLock?
    private let done = DispatchSemaphore(value: 0)
    /// Set by the unpacker thread before it signals `done`; read after waiting on it.
    private var outcome: Result<LayerBlobDigests, Error>?
    private var ended = false

    /// The FIFO's capacity: big enough that the network rarely waits on the unpacker.
    static let fifoSize: Int32 = 1 << 20

    init(image: IncomingImage, layer: IncomingImage.Layer, lock: FileLock) throws {
        self.image = image
        self.layer = layer
        self.lock = lock
        // By position: a manifest may list the same blob twice (two empty layers).
        blobPath = image.staging + "/\(layer.index)-" + layer.digest.hex
        fifoPath = blobPath + ".fifo"
        signal(SIGPIPE, SIG_IGN)  // a stopped unpacker shows as EPIPE, not a killed process
        do { try Sys.mkfifo(fifoPath, 0o600) } catch {
            throw UnionFSError.io(error, "cannot create '\(fifoPath)': \(error)")
        }
        // Opened here, read end first (non-blocking, so neither open waits for the other); the
        // read end stays open until the unpacker is done, so the unpacker's own open never waits.
        let readFd: Int32
        do { readFd = try Sys.open(fifoPath, O_RDONLY | O_NONBLOCK) } catch {
            throw UnionFSError.io(error, "cannot open '\(fifoPath)': \(error)")
        }
        do { writeFd = try Sys.open(fifoPath, O_WRONLY) } catch {
            Sys.close(readFd)
            throw UnionFSError.io(error, "cannot open '\(fifoPath)': \(error)")
        }
        _ = fcntl(writeFd, 1031, Self.fifoSize)  // F_SETPIPE_SZ (not exported by Glibc)
        do { blobFd = try Sys.open(blobPath, O_WRONLY | O_CREAT | O_EXCL, 0o644) } catch {
            Sys.close(readFd); Sys.close(writeFd)
            throw UnionFSError.io(error, "cannot create '\(blobPath)': \(error)")
        }
        let store = image.store
        let expect = LayerExpectation(digest: layer.digest.description, size: layer.size, diffID: layer.diffID.description)
        let stage = "layer \(layer.index + 1)/\(image.layers.count)"
        let (fifo, digest) = (fifoPath, layer.digest)
        let thread = Thread { [self] in
            let result = Result<LayerBlobDigests, Error> {
                do {
                    // The whole blob is in `blobFd` once the unpacker has read the FIFO to its
                    // end (each chunk goes to the blob file first): it lands before the layer's
                    // record, so a complete layer always has its blob for `save` and `push`.
                    return try store.unpackLayer(fifo, expect: expect, chain: layer.chain, parent: layer.parent,
                                                 diffID: layer.diffID, stage: stage, progress: nil,
                                                 beforeRecord: { try self.landBlob() })
                } catch let e as ConfigurationError {
                    // The FIFO's path means nothing to the user: name the blob.
                    throw UnionFSError(e.kind, e.message.replacingOccurrences(of: "layer '\(fifo)'", with: "blob \(digest)"))
                }
            }
            Sys.close(readFd)  // from here a writer gets EPIPE instead of waiting
            outcome = result
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { if !ended { abandon() } }

    /// Takes the next bytes of the blob. Throws the unpacker's error when it stopped early (a
    /// hostile name, a corrupt stream).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        do { try Sys.writeAll(blobFd, bytes) } catch {
            throw UnionFSError.io(error, "writing '\(blobPath)': \(error)")
        }
        do { try Sys.writeAll(writeFd, bytes) } catch {
            if error == .brokenPipe {
                // The unpacker has stopped; its reason is the one to give.
                waitForUnpacker()
                if case .failure(let reason)? = outcome { throw reason }
            }
            throw UnionFSError.io(error, "writing to the unpacker of \(layer.digest): \(error)")
        }
        received += Int64(bytes.count)
    }

    /// The blob has arrived: waits for the unpacker's checks, then lands the blob. The layer
    /// is complete (and kept, whatever happens to the rest of the pull) when this returns.
    public func finish() throws {
        ended = true
        Sys.close(writeFd)
        writeFd = -1
        waitForUnpacker()
        defer { cleanUp() }
        if case .failure(let e)? = outcome { throw e }
        lock?.downgrade()
        if let lock { image.keep(lock) }
        lock = nil
    }

    /// Syncs the checked blob and lands it in the store's blobs. Called on the unpacker's thread
    /// after the writer has closed the FIFO, so nothing writes to `blobFd` any more.
    private func landBlob() throws {
        do { try Sys.fsync(blobFd) } catch { throw UnionFSError.io(error, "syncing '\(blobPath)': \(error)") }
        Sys.close(blobFd)
        blobFd = -1
        try image.store.landBlob(staged: blobPath, digest: layer.digest)
    }

    /// Gives the layer up (the download failed): the unpacker sees the stream end early and
    /// removes what it staged.
    public func abandon() {
        ended = true
        if writeFd >= 0 { Sys.close(writeFd); writeFd = -1 }
        waitForUnpacker()
        cleanUp()
    }

    /// Waits until the unpacker thread has ended (at once if it has): `outcome` is set then.
    private func waitForUnpacker() {
        done.wait()
        done.signal()
    }

    private func cleanUp() {
        if blobFd >= 0 { Sys.close(blobFd); blobFd = -1 }
        try? Sys.unlink(blobPath)
        try? Sys.unlink(fifoPath)
        lock?.release()
        lock = nil
    }
}
