// RequestBodyConsumer: a request body pushed by the connection to a consumer, chunk by chunk, on
// the connection's queue; no thread waits for it. The consumer says when it is behind (`chunk`
// returns `.pause`) and the connection stops reading the socket until `resume()` (TCP flow control
// then slows the client down). For routes registered with `RouteOptions.body == .pushed`.

import Synchronization

/// The push-style body of a request on a `.pushed` route (`Request.body` is `.pushed(feed)`).
/// The handler calls `start(_:)` with its consumer; until then the connection reads no body bytes.
public final class RequestBodyFeed: Sendable {
    struct State {
        var connection: Connection?
        var consumer: RequestBodyConsumer?
        var started = false
    }
    let state = Mutex(State())

    init(connection: Connection) { state.withLock { $0.connection = connection } }

    /// Starts delivery to `consumer` (once; later calls are ignored).
    public func start(_ consumer: RequestBodyConsumer) {
        let connection = state.withLock { s -> Connection? in
            guard !s.started else { return nil }
            s.started = true
            s.consumer = consumer
            return s.connection
        }
        guard let connection else { consumer.end(.failure(ResponseBodyWriter.ClientDisconnected())); return }
        connection.queue.async { connection.consumerStarted(consumer) }
    }

    /// The consumer caught up: read on. Any thread.
    public func resume() {
        guard let connection = state.withLock({ $0.connection }) else { return }
        connection.queue.async { connection.consumerResumed() }
    }

    func detach() { state.withLock { $0.connection = nil } }
}

/// What a consumer tells the connection after a chunk.
public enum ConsumeDecision: Sendable { case more, pause }

/// Receives a pushed request body. `chunk` and `end` run on the connection's queue: they must not
/// block (hand heavy work to a thread of your own and pause until it caught up).
public final class RequestBodyConsumer: Sendable {
    private let onChunk: @Sendable ([UInt8]) -> ConsumeDecision
    private let onEnd: @Sendable (Result<HTTPHeaders, any Error>) -> Void
    private let ended = Atomic<Bool>(false)

    /// `onEnd` gets the trailers when the body is complete, or the error (413, 408, 400 for a bad
    /// body; `ResponseBodyWriter.ClientDisconnected` when the client went away). It runs once.
    public init(chunk: @escaping @Sendable ([UInt8]) -> ConsumeDecision,
                end: @escaping @Sendable (Result<HTTPHeaders, any Error>) -> Void) {
        onChunk = chunk
        onEnd = end
    }

    func chunk(_ bytes: [UInt8]) -> ConsumeDecision {
        ended.load(ordering: .acquiring) ? .more : onChunk(bytes)
    }

    func end(_ result: Result<HTTPHeaders, any Error>) {
        guard ended.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        onEnd(result)
    }
}
