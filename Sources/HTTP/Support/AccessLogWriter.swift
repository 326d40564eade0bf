// AccessLogWriter: a bounded in-memory buffer of log lines drained by one writer thread in large
// write(2) calls. A request only copies its line into the buffer; when the buffer is full the line
// is dropped and counted, so a slow or stuck log destination never slows a request down.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Where access-log lines go without ever blocking the request that made them: `append` copies the
/// line into a buffer of at most `capacity` bytes (or drops and counts it when the buffer is full);
/// one thread, started by the first line, writes the buffer out in writes of up to 64 KiB (4 KiB,
/// cut at line ends, on a pipe or socket, so that lines stay whole beside other writers of the same
/// pipe). Lines reach the destination within `flushInterval` of being appended, or sooner once 64 KiB
/// are waiting.
public final class AccessLogWriter: Sendable {
    /// The default buffer bound: 1 MiB, about 6 000 lines, half a second of a busy server.
    public static let defaultCapacity = 1 << 20
    /// The largest single write(2) to a file or terminal.
    public static let maxWriteBytes = 64 << 10

    private let sink: AccessLogSink

    /// A writer to `fileDescriptor` (closed by the writer when `closeWhenDone`), buffering at most
    /// `capacity` bytes.
    public init(fileDescriptor: Int32, capacity: Int = AccessLogWriter.defaultCapacity,
                flushInterval: Duration = .milliseconds(50), closeWhenDone: Bool = false) {
        sink = AccessLogSink(fd: fileDescriptor, capacity: max(1, capacity), flushInterval: flushInterval, ownsFD: closeWhenDone)
    }

    /// A writer appending to the file at `path` (created with mode 0640 when missing).
    public convenience init(path: String, capacity: Int = AccessLogWriter.defaultCapacity) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AccessLogWriterError(path: path, errno: errno) }
        self.init(fileDescriptor: fd, capacity: capacity, closeWhenDone: true)
    }

    /// A writer to standard error.
    public static func standardError(capacity: Int = AccessLogWriter.defaultCapacity) -> AccessLogWriter {
        AccessLogWriter(fileDescriptor: 2, capacity: capacity)
    }

    deinit { sink.stop() }

    /// Queues `line` (which should end in a newline); false when the buffer was full and the line
    /// was dropped (counted in `droppedLines`). Never waits for the destination.
    @discardableResult
    public func append(_ line: String) -> Bool {
        var line = line
        return line.withUTF8 { sink.append($0) }
    }

    /// Formats `line` straight into the buffer (no String, no allocation once the buffer has grown);
    /// false when it did not fit and was dropped (counted in `droppedLines`). Never waits for the destination.
    @discardableResult
    func append(_ line: AccessLogLine, format: AccessLogFormat, label: String, level: String) -> Bool {
        sink.append { out, clock in line.write(format, label: label, level: level, into: &out, clock: &clock) }
    }

    /// Lines dropped because the buffer was full.
    public var droppedLines: Int { sink.counts().bufferFull }

    /// Lines lost because the destination refused a write (closed pipe, full disk, …).
    public var failedLines: Int { sink.counts().writeError }

    /// Waits until every line appended so far has been written (or failed), at most `timeout`;
    /// false when the destination did not take them in time. For shutdown.
    @discardableResult
    public func flush(timeout: Duration = .seconds(2)) -> Bool { sink.flush(timeout: timeout) }

    /// `http_access_log_dropped_total{reason}` in the Prometheus text format.
    public func prometheusText() -> String {
        let c = sink.counts()
        return """
            # HELP http_access_log_dropped_total Access-log lines lost: buffer_full (the writer fell behind), write_error (the destination refused them).
            # TYPE http_access_log_dropped_total counter
            http_access_log_dropped_total{reason="buffer_full"} \(c.bufferFull)
            http_access_log_dropped_total{reason="write_error"} \(c.writeError)

            """
    }
}

/// The access-log file could not be opened.
public struct AccessLogWriterError: Error, CustomStringConvertible {
    /// The file.
    public let path: String
    /// The `open(2)` error.
    public let errno: Int32
    /// The path and the system's message.
    public var description: String { "cannot open access log \(path): \(String(cString: strerror(errno)))" }
}

/// The buffer and the writer thread's state. The thread holds only the sink, so the owning
/// `AccessLogWriter` can go away (and stop the thread) while it runs.
private final class AccessLogSink: @unchecked Sendable {
    private enum WriterState { case notStarted, busy, waitingForLines, waitingForMore }

    let fd: Int32
    let capacity: Int
    let flushInterval: Double
    let ownsFD: Bool
    let maxWrite: Int

    // Guarded by `lock`.
    private let lock = ConditionLock()
    private var pending: [UInt8] = []
    private var spare: [UInt8] = []
    private var state = WriterState.notStarted
    private var stopping = false
    private var flushers = 0
    /// Bytes accepted by `append`, and bytes written or given up on, since the start.
    private var acceptedBytes = 0
    private var doneBytes = 0
    private var droppedFull = 0
    private var droppedWriteError = 0
    /// The formatted current second of the lines' timestamps.
    private var clock = AccessLogClock()

    init(fd: Int32, capacity: Int, flushInterval: Duration, ownsFD: Bool) {
        self.fd = fd
        self.capacity = capacity
        self.flushInterval = Double(flushInterval.components.seconds) + Double(flushInterval.components.attoseconds) / 1e18
        self.ownsFD = ownsFD
        var st = stat()
        let kind = fstat(fd, &st) == 0 ? st.st_mode & mode_t(S_IFMT) : 0
        let isStream = kind == mode_t(S_IFIFO) || kind == mode_t(S_IFSOCK)
        // POSIX makes a pipe write of at most PIPE_BUF (4096 on Linux, 512 at least) bytes atomic:
        // other writers' lines cannot land inside it.
        maxWrite = isStream ? 4096 : AccessLogWriter.maxWriteBytes
        pending.reserveCapacity(min(capacity, AccessLogWriter.maxWriteBytes))
    }

    func append(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        append { out, _ in out.append(contentsOf: line) }
    }

    /// Runs `write` (which appends one line) on the buffer under the lock; takes the line back out and
    /// counts it dropped when it made the buffer exceed `capacity`.
    func append(_ write: (inout [UInt8], inout AccessLogClock) -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping, pending.count < capacity else {
            droppedFull += 1
            return false
        }
        let start = pending.count
        write(&pending, &clock)
        guard pending.count <= capacity else {
            pending.removeSubrange(start...)
            droppedFull += 1
            return false
        }
        acceptedBytes += pending.count - start
        switch state {
        case .notStarted:
            state = .busy
            let thread = Thread { [self] in run() }
            thread.name = "access-log"
            thread.stackSize = 256 << 10
            thread.start()
        case .waitingForLines:
            state = .busy
            lock.broadcast()
        case .waitingForMore where pending.count >= maxWrite:
            state = .busy
            lock.broadcast()
        case .busy, .waitingForMore:
            break  // the writer takes these lines with its next batch: no wake-up per line
        }
        return true
    }

    func counts() -> (bufferFull: Int, writeError: Int) {
        lock.withLock { (droppedFull, droppedWriteError) }
    }

    func flush(timeout: Duration) -> Bool {
        let end = ContinuousClock.now + timeout
        lock.lock()
        defer { lock.unlock() }
        let target = acceptedBytes
        flushers += 1
        defer { flushers -= 1 }
        while doneBytes < target {
            lock.broadcast()  // a writer collecting a batch writes it now
            let left = end - ContinuousClock.now
            guard left > .zero else { return false }
            lock.wait(seconds: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
        }
        return true
    }

    /// Lets the thread write what is buffered and exit; refuses new lines.
    func stop() {
        lock.withLock {
            stopping = true
            if state == .notStarted {
                if ownsFD { close(fd) }
            } else {
                lock.broadcast()
            }
        }
    }

    private func run() {
        lock.lock()
        while true {
            if pending.isEmpty {
                if stopping { break }
                state = .waitingForLines
                lock.wait()
                continue
            }
            if pending.count < maxWrite && !stopping && flushers == 0 {
                // Gather a larger batch: an appender wakes us once `maxWrite` bytes wait.
                state = .waitingForMore
                lock.wait(seconds: flushInterval)
            }
            state = .busy
            var batch = pending
            pending = spare
            lock.unlock()
            let lost = writeAll(batch)
            let written = batch.count
            batch.removeAll(keepingCapacity: true)
            lock.lock()
            spare = batch
            doneBytes += written
            droppedWriteError += lost
            if flushers > 0 { lock.broadcast() }
        }
        lock.unlock()
        if ownsFD { close(fd) }
    }

    /// Writes `bytes` in writes of at most `maxWrite` (cut after a newline when the batch goes on);
    /// returns how many lines were lost to a write error (the rest of the batch is given up).
    private func writeAll(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBufferPointer { buf -> Int in
            guard let base = buf.baseAddress else { return 0 }
            var offset = 0
            while offset < buf.count {
                var end = min(buf.count, offset + maxWrite)
                if end < buf.count, let nl = buf[offset..<end].lastIndex(of: UInt8(ascii: "\n")) { end = nl + 1 }
                let n = write(fd, base + offset, end - offset)
                if n > 0 { offset += n; continue }
                let err = errno
                if n < 0 && err == EINTR { continue }
                if n < 0 && (err == EAGAIN || err == EWOULDBLOCK) {
                    // Someone made the descriptor non-blocking: wait for room instead of spinning.
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 100)
                    continue
                }
                return buf[offset...].reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            }
            return 0
        }
    }
}
