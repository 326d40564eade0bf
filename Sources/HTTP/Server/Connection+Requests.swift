// Connection+Requests: the request lifecycle of a connection: parse, route, read or stream the
// body, run the handler on the pool, write the response in order, then the next pipelined request.

import Dispatch
import Logging

extension Connection {
    private enum Step { case event(HTTPRequestParser.Event, [UInt8]?), failure(HTTPParseError) }

    /// Parses buffered input as far as the current state allows.
    func processInput() {
        let wasParsing = parsing
        parsing = true
        defer { parsing = wasParsing }
        while !closed && !closing {
            if phase == .bodyDone { break }
            if phase == .streamingBody && streamPaused { break }
            if phase == .awaitingHead && (inFlight || output.readable > core.configuration.responseStreamBuffer) { break }
            let (step, consumed) = input.withReadable { buffer -> (Step, Int) in
                do {
                    let (event, consumed) = try parser.parse(buffer)
                    if case .body(let range) = event {
                        return (.event(event, Array(UnsafeRawBufferPointer(rebasing: buffer[range]))), consumed)
                    }
                    return (.event(event, nil), consumed)
                } catch let error as HTTPParseError {
                    return (.failure(error), 0)
                } catch {
                    return (.failure(HTTPParseError(.badRequest, "\(error)")), 0)
                }
            }
            input.consume(consumed)
            switch step {
            case .failure(let error):
                failRequest(error)
                return
            case .event(.needMore, _):
                if consumed == 0 { return }
            case .event(.head(let head), _):
                startRequest(head)
            case .event(.body, let bytes):
                deliverBody(bytes ?? [])
            case .event(.end(let trailers), _):
                endBody(trailers)
            }
        }
    }

    private func startRequest(_ head: RequestHead) {
        let resolution = core.router.resolve(method: head.method, rawPath: head.rawPath)
        // The route's own limit, known before any body byte is read: a Content-Length over it is
        // answered 413 (naming it) at once and the connection closes; the body is never buffered.
        let limit = resolution.options.bodyLimit(for: head.headers)
            ?? min(core.router.defaultMaxBodyBytes ?? .max, core.configuration.maxBodyBytes)
        parser.setBodyLimit(limit)
        if case .length(let n) = head.framing, n > limit {
            failRequest(.bodyTooLarge(limit: limit, declared: n), head: head)
            return
        }
        let context = RequestContext(requestID: RequestIDMiddleware.requestID(for: head.headers), route: resolution.template,
                                     remoteAddress: peer, logger: core.logger, server: core.status)
        current = Current(head: head, resolution: resolution, context: context)
        let hasBody: Bool
        switch head.framing {
        case .none, .length(0): hasBody = false
        default: hasBody = true
        }
        if head.expectContinue && hasBody { enqueueOutput(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
        bodyBuffer = []
        if hasBody && resolution.options.body == .streaming {
            let stream = RequestBodyStream(capacity: core.configuration.requestStreamBuffer) { [self] in
                queue.async { self.streamDrained() }
            }
            bodyStream = stream
            streamPaused = false
            phase = .streamingBody
            dispatchHandler(body: .stream(stream))
        } else if hasBody && resolution.options.body == .pushed {
            // No body byte is read until the handler starts its consumer.
            let feed = RequestBodyFeed(connection: self)
            bodyFeed = feed
            consumerFailure = nil
            streamPaused = true
            phase = .streamingBody
            dispatchHandler(body: .pushed(feed))
        } else {
            if case .length(let n) = head.framing { bodyBuffer.reserveCapacity(min(n, 1 << 20)) }
            phase = .bufferingBody
        }
    }

    private func deliverBody(_ bytes: [UInt8]) {
        if phase == .streamingBody, let stream = bodyStream {
            if !stream.append(bytes) { streamPaused = true }
        } else if phase == .streamingBody, let consumer = bodyConsumer {
            if consumer.chunk(bytes) == .pause { streamPaused = true }
        } else {
            bodyBuffer += bytes
        }
    }

    private func endBody(_ trailers: HTTPHeaders) {
        if phase == .streamingBody {
            bodyStream?.finish(trailers: trailers)
            phase = .bodyDone
            bodyConsumer?.end(.success(trailers))
        } else {
            phase = .bodyDone
            let body = bodyBuffer
            bodyBuffer = []
            dispatchHandler(body: .bytes(body))
        }
    }

    /// The handler started its body consumer: read the body now.
    func consumerStarted(_ consumer: RequestBodyConsumer) {
        guard !closed, bodyFeed != nil, bodyConsumer == nil else {
            consumer.end(.failure(consumerFailure ?? ResponseBodyWriter.ClientDisconnected()))
            return
        }
        if let failure = consumerFailure { consumer.end(.failure(failure)); return }
        bodyConsumer = consumer
        streamPaused = false
        processInput()
        updateReadInterest()
        armTimer()
    }

    /// The consumer caught up.
    func consumerResumed() { streamDrained() }

    /// Tells the body consumer (or the one yet to start) that the body failed.
    func failConsumer(_ error: any Error) {
        if let consumer = bodyConsumer {
            consumer.end(.failure(error))
        } else if bodyFeed != nil, consumerFailure == nil {
            consumerFailure = error
        }
    }

    private func streamDrained() {
        guard !closed, streamPaused else { return }
        streamPaused = false
        processInput()
        updateReadInterest()
        armTimer()
    }

    /// Answers a parse error or timeout with its status and closes; a running streaming handler
    /// sees the error from `next()` and its response is the last one. The answer carries the
    /// request's id: the current request's, the client's from `head` when sane, else a new one.
    func failRequest(_ error: HTTPParseError, head: RequestHead? = nil) {
        guard !closed else { return }
        if inFlight {
            bodyStream?.fail(HTTPError(error.status, message: error.reason))
            failConsumer(HTTPError(error.status, message: error.reason))
            phase = .bodyDone
            closeAfterResponse = true
            return
        }
        // A TLS handshake that stalled or failed has no channel to answer on.
        guard transport.canWrite else { abort(); return }
        core.logger.debug("rejected request", metadata: ["peer": .string(peer), "error": .string(error.description)])
        var bytes: [UInt8] = []
        var response = HTTPError(error.status, message: error.reason).response
        let requestID = current?.context.requestID ?? RequestIDMiddleware.requestID(for: head?.headers ?? HTTPHeaders())
        response.headers.replaceOrAdd(name: "X-Request-Id", value: requestID)
        if case .bytes(let body) = response.body {
            ResponseHeadEncoder.encode(status: response.status, headers: response.headers, framing: .length(body.count),
                                       keepAlive: false, version: .http1_1, into: &bytes)
            bytes += body
        }
        phase = .bodyDone
        enqueueOutput(bytes)
        closeGracefully()
    }

    // MARK: handlers

    private func dispatchHandler(body: RequestBody) {
        guard let current else { return }
        inFlight = true
        let request = Request(head: current.head, pathParameters: current.resolution.parameters, body: body)
        let core = self.core
        if current.resolution.options.execution == .connectionQueue {
            let response = core.router.respond(to: request, context: current.context, resolution: current.resolution)
            if case .stream = response.body {
                core.pool.submit { [self] in deliver(response, for: current.head, onQueue: false) }  // writers block
            } else {
                deliver(response, for: current.head, onQueue: true)
            }
        } else {
            let serial: Int?
            if current.resolution.options.body == .buffered {
                startHandlerClock()
                serial = handlerSerial
            } else {
                serial = nil
            }
            core.pool.submit { [self] in
                // A request whose deadline passed while it waited for a thread is not run at all.
                if let serial {
                    let skipped = skippedSerial.load(ordering: .acquiring)
                    if skipped == serial || skipped == Int.max { return }
                }
                // A streaming handler waits on its client's body: only so many may hold pool threads.
                var streaming = false
                if case .stream = request.body {
                    let running = core.streamingHandlers.add(1, ordering: .acquiringAndReleasing).newValue
                    guard running <= core.streamingHandlerLimit else {
                        core.streamingHandlers.subtract(1, ordering: .acquiringAndReleasing)
                        var busy = HTTPError(.serviceUnavailable, code: "too_many_uploads",
                                             message: "\(core.streamingHandlerLimit) streamed uploads are being received; retry shortly").response
                        busy.headers.replaceOrAdd(name: "Retry-After", value: "5")
                        deliver(busy, for: current.head, onQueue: false, serial: serial)
                        return
                    }
                    streaming = true
                }
                defer { if streaming { core.streamingHandlers.subtract(1, ordering: .acquiringAndReleasing) } }
                let response = core.router.respond(to: request, context: current.context, resolution: current.resolution)
                deliver(response, for: current.head, onQueue: false, serial: serial)
            }
        }
    }

    /// The handler missed its deadline: answer 503 and close; its late response is dropped.
    func handlerTimedOut() {
        guard !closed, inFlight, let current, let limit = core.configuration.handlerTimeout else { return }
        handlerDeadline = nil
        abandonedSerial = handlerSerial
        skippedSerial.store(handlerSerial, ordering: .releasing)
        current.context.cancellation.cancel()
        core.logger.warning("handler missed its deadline", metadata: ["peer": .string(peer), "path": .string(current.head.path)])
        let ms = limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000
        let within = ms % 1000 == 0 ? "\(ms / 1000) s" : "\(Double(ms) / 1000) s"
        let response = HTTPError(.serviceUnavailable, message: "the request was not answered within \(within); it may still complete on the server").response
        closeAfterResponse = true
        if case .bytes(let body) = response.body { sendBuffered(response.status, response.headers, body, head: current.head) }
    }

    /// On the connection queue: false when the handler run `serial` was abandoned at its deadline;
    /// otherwise its answer is on time and the deadline is cleared.
    private func claimAnswer(_ serial: Int?) -> Bool {
        guard let serial else { return true }
        if serial == abandonedSerial || closed {
            core.lateAnswersDropped.add(1, ordering: .relaxed)
            return false
        }
        if serial == handlerSerial { handlerDeadline = nil }
        return true
    }

    /// Runs on the handler thread (or the queue for inline handlers): hands a response to the
    /// connection queue, running a streaming body's writer here with backpressure.
    private func deliver(_ response: Response, for head: RequestHead, onQueue: Bool, serial: Int? = nil) {
        switch response.body {
        case .bytes(let body):
            if onQueue {
                // Inline handler: answer now; the parsing loop it runs in goes on with the next request.
                sendBuffered(response.status, response.headers, body, head: head)
            } else {
                // From a handler thread, `sync` runs the (non-blocking) send on this thread as soon
                // as the queue is free, saving a thread wake-up per response.
                queue.sync { if claimAnswer(serial) { sendBuffered(response.status, response.headers, body, head: head) } }
            }
        case .push(let stream):
            let begin: @Sendable () -> Void = { [self] in
                guard claimAnswer(serial) else { stream.markClosed(.clientGone); return }
                beginPush(response.status, response.headers, stream: stream, head: head)
            }
            if onQueue { queue.async(execute: begin) } else { queue.sync(execute: begin) }
        case .deferred(let deferred):
            let wait: @Sendable () -> Void = { [self] in
                guard claimAnswer(serial), !closed else { deferred.cancel(); return }
                self.deferred = deferred
                if let answer = deferred.attach(self) { deliverDeferred(answer) }
            }
            if onQueue { queue.async(execute: wait) } else { queue.sync(execute: wait) }
        case .stream(let produce):
            if serial != nil, !queue.sync(execute: { claimAnswer(serial) }) { return }
            let chunked = head.version == .http1_1
            let headOnly = head.method == .head || response.status.forbidsBody
            let gate = OutputGate(highWater: core.configuration.responseStreamBuffer)
            queue.async { [self] in beginStream(response.status, response.headers, gate: gate, chunked: chunked, headOnly: headOnly, head: head) }
            if headOnly {
                queue.async { [self] in responseFinished() }
                return
            }
            let writer = ResponseBodyWriter(gate: gate, chunked: chunked) { [self] bytes in
                queue.async { self.enqueueOutput(bytes) }
            }
            do {
                try produce(writer)
                _ = writer.finish { [self] in queue.async { self.responseFinished() } }
            } catch {
                if !(error is ResponseBodyWriter.ClientDisconnected) {
                    core.logger.error("streamed response failed", metadata: ["peer": .string(peer), "error": .string("\(error)")])
                }
                queue.async { [self] in abort() }  // the head is out: truncate so the client sees the failure
            }
        }
    }

    /// The deferred answer, from any thread: sent like a handler's response.
    func deliverDeferred(_ response: Response) {
        queue.async { [self] in
            guard !closed, let pending = deferred, let head = current?.head else { return }
            deferred = nil
            pending.detach()
            switch response.body {
            case .stream:
                core.pool.submit { [self] in deliver(response, for: head, onQueue: false) }  // its writer blocks
            case .deferred:
                let error = HTTPError(.internalServerError, message: "a deferred response answered with another deferred response").response
                deliver(error, for: head, onQueue: true)
            default:
                deliver(response, for: head, onQueue: true)
            }
        }
    }

    /// Sends a push stream's head and what it holds, then lets its producer write through the queue.
    private func beginPush(_ status: HTTPStatus, _ headers: HTTPHeaders, stream: PushStream, head: RequestHead) {
        guard !closed else { stream.markClosed(.clientGone); return }
        let chunked = head.version == .http1_1
        let headOnly = head.method == .head || status.forbidsBody
        let keepAlive = chunked && keepAliveAfterResponse(head)
        var bytes: [UInt8] = []
        let framing: ResponseHeadEncoder.Framing = status.forbidsBody ? .none : chunked ? .chunked : .untilClose
        ResponseHeadEncoder.encode(status: status, headers: withRequestID(headers), framing: framing, keepAlive: keepAlive,
                                   version: head.version, into: &bytes)
        if !keepAlive { closeAfterResponse = true }
        if headOnly {
            if chunked && !status.forbidsBody { bytes += Array("0\r\n\r\n".utf8) }
            enqueueOutput(bytes)
            stream.markClosed(.finished)
            responseFinished()
            return
        }
        enqueueOutput(bytes)
        guard !closed else { stream.markClosed(.clientGone); return }
        unrelatedPending = output.readable
        push = stream
        let (early, finished, wasClosed) = stream.attach(self, chunked: chunked)
        if wasClosed { abort(); return }  // overflowed before it was attached
        enqueueOutput(early)
        if closed { return }
        if finished || shuttingDown { pushFinish(stream, reason: finished ? .finished : .serverShutdown); return }
        if let interval = stream.heartbeat, interval > .zero {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            let ns = DispatchTimeInterval.nanoseconds(Int(clamping: interval.nanoseconds))
            timer.schedule(deadline: .now() + ns, repeating: ns)
            timer.setEventHandler { [weak self, weak stream] in
                guard let self, let stream, self.push === stream, !self.closed else { return }
                if let beat = stream.heartbeatDue() { self.enqueueOutput(beat) }
            }
            timer.activate()
            pushTimer = timer
        }
    }

    /// A push stream's producer wrote `bytes` (already framed).
    func pushEnqueue(_ bytes: [UInt8], from stream: PushStream) {
        guard !closed, push === stream else { return }
        enqueueOutput(bytes)
    }

    /// Ends a push stream's body and goes on with the connection.
    func pushFinish(_ stream: PushStream, reason: PushStream.CloseReason) {
        guard !closed, push === stream else { return }
        pushTimer?.cancel()
        pushTimer = nil
        let chunked = current?.head.version == .http1_1
        if chunked { enqueueOutput(Array("0\r\n\r\n".utf8)) } else { closeAfterResponse = true }
        push = nil
        stream.markClosed(reason)
        responseFinished()
    }

    /// A push stream's client fell `maxBufferedBytes` behind: drop it.
    func pushOverflowed(_ stream: PushStream) {
        guard !closed, push === stream else { return }
        core.logger.info("push stream client too slow; disconnecting", metadata: ["peer": .string(peer)])
        push = nil
        pushTimer?.cancel()
        pushTimer = nil
        stream.detach()
        abort()
    }

    private func keepAliveAfterResponse(_ head: RequestHead) -> Bool {
        head.keepAlive && !closeAfterResponse && !shuttingDown && phase == .bodyDone
    }

    private func sendBuffered(_ status: HTTPStatus, _ headers: HTTPHeaders, _ body: [UInt8], head: RequestHead) {
        guard !closed else { return }
        let keepAlive = keepAliveAfterResponse(head)
        let noBody = status.forbidsBody
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + (head.method == .head ? 0 : body.count))
        ResponseHeadEncoder.encode(status: status, headers: withRequestID(headers), framing: noBody ? .none : .length(body.count),
                                   keepAlive: keepAlive, version: head.version, into: &bytes)
        if !noBody && head.method != .head { bytes += body }
        if !keepAlive { closeAfterResponse = true }
        enqueueOutput(bytes)
        responseFinished()
    }

    private func beginStream(_ status: HTTPStatus, _ headers: HTTPHeaders, gate: OutputGate, chunked: Bool, headOnly: Bool, head: RequestHead) {
        guard !closed else { gate.close(); return }
        let keepAlive = chunked && keepAliveAfterResponse(head)
        var bytes: [UInt8] = []
        let framing: ResponseHeadEncoder.Framing = status.forbidsBody ? .none : chunked ? .chunked : .untilClose
        ResponseHeadEncoder.encode(status: status, headers: withRequestID(headers), framing: framing, keepAlive: keepAlive,
                                   version: head.version, into: &bytes)
        if !keepAlive { closeAfterResponse = true }
        self.gate = gate
        enqueueOutput(bytes)
        unrelatedPending = output.readable
        if closing || closed { gate.close() }
    }

    /// `headers` with the current request's `X-Request-Id` unless a handler or middleware set one.
    private func withRequestID(_ headers: HTTPHeaders) -> HTTPHeaders {
        guard !headers.contains("X-Request-Id"), let id = current?.context.requestID, !id.isEmpty else { return headers }
        var h = headers
        h.add(name: "X-Request-Id", value: id)
        return h
    }

    /// The response is fully queued: close, or go on with the next request.
    func responseFinished() {
        guard !closed else { return }
        inFlight = false
        gate = nil
        unrelatedPending = 0
        let abandonedBody = phase != .bodyDone  // body bytes still on the wire: framing lost
        if abandonedBody { failConsumer(HTTPError(.badRequest, message: "the request was answered before its body ended")) }
        bodyStream = nil
        bodyConsumer = nil
        bodyFeed?.detach()
        bodyFeed = nil
        consumerFailure = nil
        if let push { self.push = nil; pushTimer?.cancel(); pushTimer = nil; push.markClosed(.finished) }
        current = nil
        if abandonedBody || closeAfterResponse || shuttingDown {
            closeGracefully()
            return
        }
        phase = .awaitingHead
        becameIdle()
        if !parsing { processInput() }
        if peerEOF && !inFlight && phase == .awaitingHead { closeGracefully() }
        updateReadInterest()
        armTimer()
    }
}
