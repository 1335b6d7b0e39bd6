import AsyncHTTPClient
import Dispatch
import NIOCore
import NIOHTTP1

/// What the client keeps of a response: status, headers, and the body when it was collected.
struct Reply: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var contentType: String? { headers.first(name: "Content-Type") }
}

/// A failure of the code a response body was streamed to (the unpacker, the store): not a
/// network failure, so never retried.
struct SinkFailure: Error { let error: Error }

/// Collects a response body up to a limit, or streams a 2xx body to a sink on its own queue:
/// the body part's future completes only once the sink has taken the bytes, so a slow sink
/// holds the connection back (NIO stops reading the socket) and memory stays bounded.
///
/// `status`, `headers`, `body` are touched on the event loop only; `sinkError` on the sink
/// queue, read after the task completed.
final class ResponseDelegate: HTTPClientResponseDelegate, @unchecked Sendable {
    typealias Response = Reply
    typealias Sink = @Sendable (ByteBuffer) throws -> Void

    let limit: Int
    let sink: Sink?
    /// Called with the status and headers of a 2xx response before its body is streamed.
    let onHead: (@Sendable (Int, HTTPHeaders) throws -> Void)?
    private let queue = DispatchQueue(label: "unionfs.registry.sink")
    private var status = 0
    private var headers = HTTPHeaders()
    private var body: [UInt8] = []

    init(limit: Int, sink: Sink? = nil, onHead: (@Sendable (Int, HTTPHeaders) throws -> Void)? = nil) {
        self.limit = limit
        self.sink = sink
        self.onHead = onHead
    }

    private var streaming: Bool { sink != nil && (200...299).contains(status) }

    func didReceiveHead(task: HTTPClient.Task<Reply>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        status = Int(head.status.code)
        headers = head.headers
        if streaming, let onHead {
            do { try onHead(status, headers) } catch { return task.eventLoop.makeFailedFuture(SinkFailure(error: error)) }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Reply>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        if streaming, let sink {
            let promise = task.eventLoop.makePromise(of: Void.self)
            queue.async {
                do {
                    try sink(buffer)
                    promise.succeed(())
                } catch {
                    promise.fail(SinkFailure(error: error))
                }
            }
            return promise.futureResult
        }
        guard body.count + buffer.readableBytes <= limit else {
            return task.eventLoop.makeFailedFuture(ResponseTooLarge(limit: limit))
        }
        body.append(contentsOf: buffer.readableBytesView)
        return task.eventLoop.makeSucceededVoidFuture()
    }

    /// Waits until the sink has taken every body part handed to it: call once the task has
    /// completed, before whatever the sink writes to is closed.
    func drain() { queue.sync {} }

    func didFinishRequest(task: HTTPClient.Task<Reply>) throws -> Reply {
        Reply(status: status, headers: headers, body: body)
    }
}

struct ResponseTooLarge: Error { let limit: Int }
