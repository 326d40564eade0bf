// Connection+Requests: the request lifecycle of a connection: parse, route, read or stream the
// body, run the handler on the pool, write the response in order, then the next pipelined request.

import Dispatch
import Logging

extension Connection {
    private enum Step { case event(HTTPRequestParser.Event, [UInt8]?), failure(HTTPParseError) }

    /// Parses buffered input as far as the current state allows.
    func processInput() {
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
        let limit = resolution.options.maxBodyBytes ?? core.configuration.maxBodyBytes
        parser.setBodyLimit(limit)
        if case .length(let n) = head.framing, n > limit {
            failRequest(HTTPParseError(.contentTooLarge, "body of \(n) bytes exceeds \(limit)"), head: head)
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
        } else {
            if case .length(let n) = head.framing { bodyBuffer.reserveCapacity(min(n, 1 << 20)) }
            phase = .bufferingBody
        }
    }

    private func deliverBody(_ bytes: [UInt8]) {
        if phase == .streamingBody, let stream = bodyStream {
            if !stream.append(bytes) { streamPaused = true }
        } else {
            bodyBuffer += bytes
        }
    }

    private func endBody(_ trailers: HTTPHeaders) {
        if phase == .streamingBody {
            bodyStream?.finish(trailers: trailers)
            phase = .bodyDone
        } else {
            phase = .bodyDone
            let body = bodyBuffer
            bodyBuffer = []
            dispatchHandler(body: .bytes(body))
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
                if let serial, queue.sync(execute: { serial == abandonedSerial || closed }) { return }
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
                // Inline handler: finish on a later turn of this queue (no re-entrant parsing).
                queue.async { [self] in sendBuffered(response.status, response.headers, body, head: head) }
            } else {
                // From a handler thread, `sync` runs the (non-blocking) send on this thread as soon
                // as the queue is free, saving a thread wake-up per response.
                queue.sync { if claimAnswer(serial) { sendBuffered(response.status, response.headers, body, head: head) } }
            }
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
        bodyStream = nil
        current = nil
        if abandonedBody || closeAfterResponse || shuttingDown {
            closeGracefully()
            return
        }
        phase = .awaitingHead
        becameIdle()
        processInput()
        if peerEOF && !inFlight && phase == .awaitingHead { closeGracefully() }
        updateReadInterest()
        armTimer()
    }
}
