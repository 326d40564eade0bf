// SSEWriter: Server-Sent Events (text/event-stream) on top of a streamed response, with heartbeat
// comments on an interval so proxies keep the stream open and a gone client is noticed.

import Dispatch

/// Sends Server-Sent Events; `send` throws `ResponseBodyWriter.ClientDisconnected` once the client left.
public final class SSEWriter: @unchecked Sendable {
    private let writer: ResponseBodyWriter

    init(writer: ResponseBodyWriter) { self.writer = writer }

    /// A `text/event-stream` response whose `body` runs on the handler thread, with a heartbeat
    /// comment every `heartbeat` while it runs.
    public static func response(heartbeat: Duration = .seconds(15), headers: HTTPHeaders = HTTPHeaders(),
                                _ body: @escaping @Sendable (SSEWriter) throws -> Void) -> Response {
        var h = headers
        h.replaceOrAdd(name: "Content-Type", value: "text/event-stream")
        h.replaceOrAdd(name: "Cache-Control", value: "no-cache")
        return Response.stream(status: .ok, headers: h) { writer in
            let sse = SSEWriter(writer: writer)
            let timer = DispatchSource.makeTimerSource(queue: ControlQueue.shared)
            let interval = DispatchTimeInterval.nanoseconds(Int(heartbeat.components.seconds * 1_000_000_000
                + heartbeat.components.attoseconds / 1_000_000_000))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler {
                if !writer.tryWrite(Array(": heartbeat\n\n".utf8)) { timer.cancel() }
            }
            timer.activate()
            defer { timer.cancel() }
            try body(sse)
        }
    }

    /// Sends one event: optional `event:` name and `id:`, and `data` split into `data:` lines.
    public func send(event: String? = nil, data: String, id: String? = nil) throws {
        try writer.write(Self.encode(event: event, data: data, id: id))
    }

    /// One event's bytes (`id:`, `event:`, `data:` lines and the blank line), e.g. to encode an
    /// event once and push it to many `PushStream`s.
    public static func encode(event: String? = nil, data: String, id: String? = nil) -> [UInt8] {
        var text = ""
        if let id { text += "id: \(Self.singleLine(id))\n" }
        if let event { text += "event: \(Self.singleLine(event))\n" }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) {
            text += "data: \(line.hasSuffix("\r") ? line.dropLast() : line)\n"
        }
        text += "\n"
        return Array(text.utf8)
    }

    /// A comment line's bytes.
    public static func encodeComment(_ text: String) -> [UInt8] { Array(": \(singleLine(text))\n\n".utf8) }

    /// A push stream for events, with a `: heartbeat` comment every `heartbeat` while the client
    /// keeps up, and at most `maxBufferedBytes` unsent before the client is dropped.
    public static func pushStream(heartbeat: Duration = .seconds(15), maxBufferedBytes: Int = 256 * 1024) -> PushStream {
        PushStream(maxBufferedBytes: maxBufferedBytes, heartbeat: heartbeat, heartbeatBytes: encodeComment("heartbeat"))
    }

    /// The `text/event-stream` response around `stream`: the handler returns it at once and the
    /// stream's producer sends events from any thread (`stream.write(SSEWriter.encode(…))`).
    public static func pushResponse(_ stream: PushStream, headers: HTTPHeaders = HTTPHeaders()) -> Response {
        var h = headers
        h.replaceOrAdd(name: "Content-Type", value: "text/event-stream")
        h.replaceOrAdd(name: "Cache-Control", value: "no-cache")
        return Response.push(stream, status: .ok, headers: h)
    }

    /// Sends a comment line (ignored by clients).
    public func comment(_ text: String) throws { try writer.write(": \(Self.singleLine(text))\n\n") }

    /// True until the client goes away.
    public var isConnected: Bool { writer.isConnected }

    private static func singleLine(_ s: String) -> String { s.filter { $0 != "\n" && $0 != "\r" } }
}
