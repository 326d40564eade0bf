// Connection: one accepted socket as a state machine on its own serial DispatchQueue, driven by
// its event loop's read events (`EventLoop`) and Dispatch write and timer sources. No blocking calls run here: handlers run on the handler pool.
//
// All mutable state below is confined to `queue` (hence `@unchecked Sendable`); other threads only
// reach the connection through `queue.async`.

import Dispatch
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class Connection: @unchecked Sendable {
    enum Phase { case awaitingHead, bufferingBody, streamingBody, bodyDone }

    /// The request being read or handled.
    struct Current {
        let head: RequestHead
        let resolution: Router.Resolution
        let context: RequestContext
    }

    let fd: Int32
    let peer: String
    /// The peer's IP address (no port): the key of the per-address connection count.
    let address: String
    /// The socket, or TLS over it.
    let transport: Transport
    let queue: DispatchQueue
    let core: ServerCore
    /// The epoll loop that watches the socket for input and runs `readEvent` on its thread.
    private let loop: EventLoop
    private let writeSource: any DispatchSourceWrite
    private let timer: any DispatchSourceTimer

    // I/O state.
    var input = ByteBuffer()
    var output = ByteBuffer()
    var parser: HTTPRequestParser
    private var readSuspended = false
    private var writeSuspended = true  // created inactive
    /// A TLS read waits for the socket to be writable (handshake or post-handshake messages).
    private var readWaitsForWrite = false
    /// A TLS write waits for the socket to be readable.
    private var writeWaitsForRead = false
    private var cancelledSources = 0
    var closed = false
    var closing = false
    private var lingering = false
    var peerEOF = false

    // Request state.
    var phase = Phase.awaitingHead
    var current: Current?
    var bodyBuffer: [UInt8] = []
    var bodyStream: RequestBodyStream?
    var streamPaused = false
    var inFlight = false
    var closeAfterResponse = false
    var shuttingDown = false
    var gate: OutputGate?
    /// The open push-style response body (`Response.push`), if any, and its heartbeat timer.
    var push: PushStream?
    var pushTimer: (any DispatchSourceTimer)?
    /// The response the handler deferred (`Response.deferred`), until it is given.
    var deferred: DeferredResponse?
    /// The push-style consumer of a streamed request body (`RouteOptions.body == .consumer`).
    var bodyConsumer: RequestBodyConsumer?
    var bodyFeed: RequestBodyFeed?
    /// The body failed before the consumer was started: it gets this at `start`.
    var consumerFailure: (any Error)?
    var unrelatedPending = 0
    /// True while `processInput` runs: a response finished inside it (an inline handler's) lets the
    /// running loop go on to the next pipelined request instead of re-entering it.
    var parsing = false
    /// Numbers the handler runs of this connection; the one whose deadline passed is abandoned.
    var handlerSerial = 0
    var abandonedSerial = 0
    /// `abandonedSerial`, or `Int.max` once closed, for a handler thread to read without waiting for
    /// the queue (a `queue.sync` there blocked on the read handler still finishing on the loop).
    let skippedSerial = Atomic<Int>(0)
    /// When the running handler must have answered (uptime ns); nil once it has, or without a limit.
    var handlerDeadline: UInt64?

    // Timing (DispatchTime uptime nanoseconds).
    private var headStartedAt: UInt64?
    private var idleSince: UInt64
    private var lastReadAt: UInt64
    private var lastWriteAt: UInt64
    private var lingerUntil: UInt64 = 0
    private var armedDeadline = UInt64.max

    init(fd: Int32, peer: String, address: String, transport: Transport, core: ServerCore) {
        self.fd = fd
        self.peer = peer
        self.address = address
        self.transport = transport
        self.core = core
        self.queue = DispatchQueue(label: "pfc.http.connection", target: core.connectionTarget)
        self.parser = HTTPRequestParser(limits: core.configuration.parserLimits)
        self.loop = EventLoop.pick()
        self.writeSource = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        self.timer = DispatchSource.makeTimerSource(queue: queue)
        let now = Self.now()
        idleSince = now
        lastReadAt = now
        lastWriteAt = now
        // The TLS handshake counts as part of the first request head: a stalled handshake is
        // answered by the header read timeout, like a stalled head.
        if transport.isTLS { headStartedAt = now }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Starts reading; called once after registration.
    func start() {
        writeSource.setEventHandler { [self] in flush() }
        timer.setEventHandler { [self] in timerFired() }
        let release: @Sendable () -> Void = { [self] in sourceCancelled() }
        writeSource.setCancelHandler(handler: release)
        timer.setCancelHandler(handler: release)
        queue.async { [self] in
            guard !closed else { return }
            loop.register(self)
            timer.schedule(deadline: .distantFuture)
            timer.activate()
            armTimer()
        }
    }

    // MARK: reading

    /// The socket is readable (from the event loop's thread, on the queue).
    func readEvent() {
        guard !closed, !readSuspended else { return }  // an event taken just before a pause or close
        handleReadable()
    }

    private func handleReadable() {
        guard !closed else { return }
        if lingering { drainWhileLingering(); return }
        if writeWaitsForRead {
            writeWaitsForRead = false
            flush()
            if closed { return }
        }
        var total = 0
        // Start with 4 KiB reads, so idle and trickling connections keep small buffers; a read
        // that fills its space is followed by a larger one (up to 64 KiB) for bulk uploads.
        var want = 4096
        // TLS returns at most one record per read: read on until it would block.
        let readUntilBlocked = transport.isTLS
        let cap = 256 * 1024
        reading: while total < cap {
            switch input.receive(upTo: want, via: transport) {
            case .bytes(let n):
                total += n
                if n < want && !readUntilBlocked { break reading }
                if n == want { want = min(want * 4, 64 * 1024, cap - total) }
            case .eof:
                peerEOF = true
                break reading
            case .wouldBlock(let readiness):
                if readiness == .writable { readWaitsForWrite = true; armWrite() }
                break reading
            case .failed:
                if let reason = transport.failureReason {
                    core.logger.debug(transport.canWrite ? "TLS error" : "TLS handshake failed",
                                      metadata: ["peer": .string(peer), "error": .string(reason)])
                }
                abort()
                return
            }
        }
        if total >= cap { kickBufferedInput() }
        if total > 0 {
            let now = Self.now()
            lastReadAt = now
            if phase == .awaitingHead && headStartedAt == nil { headStartedAt = now }
            processInput()
        }
        if peerEOF && writeWaitsForRead && !closed {
            // A TLS write that waits for the peer's bytes cannot finish once the peer sent EOF, and
            // the read source (always ready at EOF) would fire without pause until the write-stall
            // timeout. Try once more with what was just read, then give up on the connection.
            writeWaitsForRead = false
            flush()
            if writeWaitsForRead && !closed { destroy(); return }
        }
        if peerEOF && !closed { handlePeerEOF() }
        updateReadInterest()
        armTimer()
    }

    private func handlePeerEOF() {
        gate?.close()  // a streamed response has nobody left to read it
        // A push stream's client never sends after its request: EOF means it has gone.
        if push != nil { destroy(); return }
        // Nor can a deferred answer reach a client that closed: its producer is told (`onCancel`,
        // a pushed body's consumer fails) and the connection closes now.
        if deferred != nil { destroy(); return }
        // A client that closes while its request runs has gone away (a half-close while waiting for
        // the answer is treated the same): its handler may stop early.
        if inFlight { current?.context.cancellation.cancel() }
        if phase == .bufferingBody || phase == .streamingBody {
            bodyStream?.fail(HTTPError(.badRequest, code: "client_disconnected", message: "client closed before the body ended"))
            failConsumer(HTTPError(.badRequest, code: "client_disconnected", message: "client closed before the body ended"))
            closeAfterResponse = true
        }
        if !inFlight { closeGracefully() }
    }

    private func drainWhileLingering() {
        let eof = withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { scratch -> Bool in
            while true {
                let n = recv(fd, scratch.baseAddress!, scratch.count, 0)
                if n > 0 { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
                if n < 0 && errno == EINTR { continue }
                return true
            }
        }
        if eof { destroy() }
    }

    /// Reads again soon when input waits inside the transport (TLS), where the read source,
    /// which only watches the socket, would not fire for it.
    private func kickBufferedInput() {
        guard transport.hasBufferedInput else { return }
        queue.async { [self] in
            if !closed && !readSuspended && transport.hasBufferedInput { handleReadable() }
        }
    }

    /// Pauses or resumes the read source to match what the connection can accept now.
    func updateReadInterest() {
        guard !closed else { return }
        let want: Bool
        if lingering || writeWaitsForRead {
            want = true
        } else if closing || peerEOF {
            want = false
        } else if phase == .streamingBody && streamPaused {
            want = false
        } else if (inFlight || !output.isEmpty) && input.readable >= core.configuration.maxPipelinedBytes {
            want = false
        } else {
            want = true
        }
        if want && readSuspended { readSuspended = false; loop.setInterest(fd, true); kickBufferedInput() }
        if !want && !readSuspended { readSuspended = true; loop.setInterest(fd, false) }
    }

    // MARK: writing

    /// Queues bytes for the socket, sending at once what it takes.
    func enqueueOutput(_ bytes: [UInt8]) {
        guard !closed, !bytes.isEmpty else { return }
        if output.isEmpty && !writeWaitsForRead {
            var done = 0
            writing: while done < bytes.count {
                switch bytes.withUnsafeBytes({ transport.write(UnsafeRawBufferPointer(rebasing: $0[done...])) }) {
                case .bytes(let n) where n > 0:
                    done += n
                case .wouldBlock(.readable):
                    writeWaitsForRead = true
                    break writing
                case .wouldBlock(.writable):
                    break writing
                default:
                    abort()
                    return
                }
            }
            if done > 0 { sent(done) }
            if done == bytes.count { return }
            // Unsent bytes stay in order in `output`; a TLS retry starts with the same bytes.
            bytes.withUnsafeBytes { output.append(UnsafeRawBufferPointer(rebasing: $0[done...])) }
            if writeWaitsForRead { updateReadInterest() } else { armWrite() }
            armTimer()  // write-stall timeout
        } else {
            bytes.withUnsafeBytes { output.append($0) }
        }
    }

    private func sent(_ n: Int) {
        lastWriteAt = Self.now()
        if let gate {
            let unrelated = min(n, unrelatedPending)
            unrelatedPending -= unrelated
            if n > unrelated { gate.sent(n - unrelated) }
        } else if let push {
            let unrelated = min(n, unrelatedPending)
            unrelatedPending -= unrelated
            if n > unrelated { push.sent(n - unrelated) }
        }
    }

    /// Sends pending output until the socket would block.
    func flush() {
        guard !closed else { return }
        if readWaitsForWrite {
            readWaitsForWrite = false
            handleReadable()
            if closed { return }
        }
        while !output.isEmpty {
            switch output.withReadable({ transport.write($0) }) {
            case .bytes(let n) where n > 0:
                output.consume(n)
                sent(n)
            case .wouldBlock(.readable):
                writeWaitsForRead = true
                if !readWaitsForWrite { disarmWrite() }
                updateReadInterest()
                armTimer()
                return
            case .wouldBlock(.writable):
                armWrite()
                armTimer()
                return
            default:
                abort()
                return
            }
        }
        if !readWaitsForWrite { disarmWrite() }
        output.shrinkIfIdle(keep: 256 * 1024)
        if closing && !lingering {
            startLinger()
        } else if !inFlight && phase == .awaitingHead && !input.isEmpty {
            processInput()  // pipelined requests held back while output was large
        }
        updateReadInterest()
    }

    private func armWrite() {
        if writeSuspended { writeSuspended = false; writeSource.resume() }
    }

    private func disarmWrite() {
        if !writeSuspended { writeSuspended = true; writeSource.suspend() }
    }

    // MARK: closing

    /// Sends what is pending, then half-closes and drains input briefly before closing.
    func closeGracefully() {
        guard !closed, !closing else { return }
        closing = true
        gate?.close()
        bodyStream?.fail(ResponseBodyWriter.ClientDisconnected())
        failConsumer(ResponseBodyWriter.ClientDisconnected())
        if output.isEmpty { startLinger() }
        updateReadInterest()
    }

    private func startLinger() {
        if peerEOF { destroy(); return }
        transport.closeWrite()
        lingering = true
        lingerUntil = Self.now() &+ core.configuration.lingerTimeout.nanoseconds
        updateReadInterest()
        armTimer()
    }

    /// Closes at once (errors, timeouts, forced shutdown).
    func abort() { destroy() }

    private func destroy() {
        guard !closed else { return }
        closed = true
        skippedSerial.store(Int.max, ordering: .releasing)
        current?.context.cancellation.cancel()
        gate?.close()
        bodyStream?.fail(ResponseBodyWriter.ClientDisconnected())
        failConsumer(ResponseBodyWriter.ClientDisconnected())
        if let push {
            self.push = nil
            pushTimer?.cancel()
            pushTimer = nil
            push.markClosed(.clientGone)
        }
        if let deferred {
            self.deferred = nil
            deferred.cancel()
            deferred.detach()
        }
        loop.deregister(fd, watching: !readSuspended)
        readSuspended = true
        if writeSuspended { writeSuspended = false; writeSource.resume() }
        writeSource.cancel()
        timer.cancel()
        sourceCancelled()  // the read registration: closes the fd when the two sources are also done
    }

    private func sourceCancelled() {
        cancelledSources += 1
        if cancelledSources == 3 {
            transport.release()
            close(fd)
            core.connectionClosed(self)
        }
    }

    // MARK: timeouts

    private func deadline() -> (UInt64, Timeout)? {
        if closed { return nil }
        if lingering { return (lingerUntil, .linger) }
        let c = core.configuration
        var best: (UInt64, Timeout)?
        func consider(_ t: UInt64, _ kind: Timeout) { if best == nil || t < best!.0 { best = (t, kind) } }
        if !output.isEmpty { consider(lastWriteAt &+ c.writeTimeout.nanoseconds, .write) }
        switch phase {
        case .awaitingHead where !inFlight:
            if let started = headStartedAt ?? (input.isEmpty ? nil : lastReadAt) {
                consider(started &+ c.headerReadTimeout.nanoseconds, .header)
            } else if output.isEmpty {
                consider(idleSince &+ c.idleTimeout.nanoseconds, .idle)
            }
        case .bufferingBody, .streamingBody:
            if !streamPaused { consider(lastReadAt &+ c.bodyReadTimeout.nanoseconds, .body) }
        default:
            break
        }
        if inFlight, let d = handlerDeadline { consider(d, .handler) }
        return best
    }

    enum Timeout { case linger, write, header, idle, body, handler }

    /// Makes sure the timer fires no later than the current deadline.
    func armTimer() {
        guard let (d, _) = deadline() else { return }
        if d < armedDeadline {
            armedDeadline = d
            timer.schedule(deadline: DispatchTime(uptimeNanoseconds: d))
        }
    }

    private func timerFired() {
        armedDeadline = .max
        guard let (d, kind) = deadline() else { return }
        if Self.now() < d { armTimer(); return }
        switch kind {
        case .linger, .write, .idle:
            destroy()
        case .header:
            failRequest(HTTPParseError(.requestTimeout, "request header not received in time"))
        case .body:
            failRequest(HTTPParseError(.requestTimeout, "request body stalled"))
        case .handler:
            handlerTimedOut()
        }
        armTimer()
    }

    /// Sets the running handler's deadline (buffered-body routes on the handler pool).
    func startHandlerClock() {
        handlerSerial += 1
        handlerDeadline = core.configuration.handlerTimeout.map { Self.now() &+ $0.nanoseconds }
        armTimer()
    }

    /// Marks the start of a wait for the next request on this connection.
    func becameIdle() {
        input.shrinkIfIdle(keep: 64 * 1024)
        idleSince = Self.now()
        headStartedAt = input.isEmpty ? nil : idleSince
    }

    /// Server shutdown: close now when idle, else after the current response.
    func beginShutdown() {
        guard !closed else { return }
        shuttingDown = true
        if !inFlight && phase == .awaitingHead { closeGracefully() } else { closeAfterResponse = true }
        // An open push stream would otherwise stay open as long as its producer: end it now.
        if let push { pushFinish(push, reason: .serverShutdown) }
    }
}
