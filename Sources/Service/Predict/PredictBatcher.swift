// PredictBatcher: dynamic batching of `POST /v1/models/{id}/predict` on compute threads of its own
// (issue 15; NVIDIA Triton's dynamic batcher is the model). The handler validates the request,
// submits it and returns a deferred answer; a compute thread merges it with the other queued
// requests of the same model version, top and every_step (`PredictQueue`) into one FISTA batch,
// runs the batch, and answers each request with its own columns.
//
// Why a batch answers every request exactly as it would be answered alone (to float rounding):
// FISTA runs per column once W is fixed. η = 1/λmax(W_xᵀW_x) and the Gram matrix depend on W only
// (cached per model version, `ModelCache`); the stop-gradient scale s_b uses only column b's
// max(x); the momentum sequence depends on N only. The one thing the batch decides is numeric: per
// chunk and iteration the active-set kernel or the dense product is picked from the chunk's
// density, and the two sum in different orders, so outputs agree to rounding
// (`PredictBatchingTests` checks it for every kind). A NaN in one column stays in that column (every
// product is column-separable), so a request with non-finite outputs fails alone.
import CoreMetrics
import Dispatch
import Foundation
import HTTP
import Linalg
import PFC
import Synchronization

/// One submitted prediction request: its network and options, its parts' results, its answer.
final class PredictTicket: Sendable {
    /// What one part came to.
    enum Outcome: @unchecked Sendable {
        case done(predictions: [Int], outputs: [[Float]], explanations: [[ExplanationDTO]], steps: [[Int]]?)
        case failed(HTTPError)
    }

    let network: any Network
    let version: Int
    let top: Int
    let everyStep: Bool
    /// Raised when the client is gone, the deadline passed or the server shut down.
    let token: CancellationToken
    let answer: DeferredResponse
    private let results: Mutex<(outcomes: [Outcome?], left: Int)>

    init(network: any Network, version: Int, top: Int, everyStep: Bool, token: CancellationToken, answer: DeferredResponse, parts: Int) {
        self.network = network
        self.version = version
        self.top = top
        self.everyStep = everyStep
        self.token = token
        self.answer = answer
        results = Mutex((Array(repeating: nil, count: parts), parts))
    }

    /// Records part `index`; the last one answers the request.
    func finish(part index: Int, _ outcome: Outcome) {
        let all = results.withLock { r -> [Outcome?]? in
            guard r.outcomes[index] == nil else { return nil }
            r.outcomes[index] = outcome
            r.left -= 1
            return r.left == 0 ? r.outcomes : nil
        }
        guard let all else { return }
        answer.respond(Self.response(all.compactMap { $0 }, version: version, everyStep: everyStep))
    }

    /// The answer from every part in order: the first failure (the lowest row, as a request run
    /// chunk after chunk would report), else all parts' columns concatenated.
    private static func response(_ outcomes: [Outcome], version: Int, everyStep: Bool) -> Response {
        var predictions: [Int] = [], outputs: [[Float]] = [], explanations: [[ExplanationDTO]] = []
        var steps: [[Int]]? = everyStep ? [] : nil
        for o in outcomes {
            switch o {
            case .failed(let error): return error.response
            case .done(let p, let out, let expl, let st):
                predictions += p
                outputs += out
                explanations += expl
                if let st { steps? += st }
            }
        }
        let answer = PredictResponse(modelVersion: version, predictions: predictions, outputs: outputs,
                                     explanations: explanations, stepPredictions: steps)
        // The same bytes as `JSONCoding.response`, written directly (PredictJSON).
        guard let bytes = PredictJSON.encode(answer) else {
            return HTTPError(.internalServerError, message: "the prediction could not be encoded").response
        }
        return Response.json(bytes, status: .ok)
    }
}

/// One part of a request: columns `offset ..< offset + x.cols` of its inputs.
struct PredictPart: @unchecked Sendable {
    let ticket: PredictTicket
    let index: Int
    let offset: Int
    let x: Matrix
}

/// Counters for tests and operators.
public struct PredictBatchStats: Sendable, Equatable {
    /// Batches run (each one FISTA forward pass).
    public var batches = 0
    /// Request parts run in them.
    public var parts = 0
    /// Rows run in them.
    public var rows = 0
    /// Most rows one batch held.
    public var largestBatchRows = 0
    /// Most request parts one batch held.
    public var largestBatchParts = 0
    /// Requests refused because the queue was full.
    public var queueFull = 0
    /// Requests waiting for a compute thread now.
    public var waiting = 0
    /// Batches computing now.
    public var running = 0
    /// Batches that waited for company because another batch was computing (the rest ran at once).
    public var waitedForCompany = 0
    /// Batches waiting for company now.
    public var forming = 0
}

/// The dynamic batcher: a bounded queue and `threads` compute threads (started on first use).
public final class PredictBatcher: Sendable {
    /// How it batches (`ServiceConfiguration.predictBatch*`).
    public struct Options: Sendable {
        /// Most rows per FISTA batch; larger requests are split into parts of this many rows.
        public var maxRows = 64
        /// How long the oldest request of a forming batch waits for company; 0: no batching.
        public var maxDelay: Duration = .milliseconds(1)
        /// Requests waiting for a compute thread beyond which one more is answered 503.
        public var queueLimit = 1024
        /// Compute threads running batches.
        public var threads = 2
        /// A request not answered within this (from its arrival) is answered 503 and its compute stops; nil: no limit.
        public var timeout: Duration? = .seconds(120)
        /// `Retry-After` seconds of the 503 a full queue answers.
        public var retryAfterSeconds = 1
        public init() {}
    }

    /// Histogram buckets that fit `pfc_predict_batch_rows` (a Prometheus factory's
    /// `valueHistogramBuckets[label]`; the default value buckets are made for seconds).
    public static let batchRowsBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    /// Histogram buckets that fit `pfc_predict_queue_delay_seconds` (`durationHistogramBuckets[label]`).
    public static let queueDelayBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    let options: Options
    let queue: PredictQueue<PredictPart>
    private let started = Mutex(false)
    private let counters = Mutex(PredictBatchStats())
    private let batchRows: Recorder
    private let queueDelay: CoreMetrics.Timer
    private let queueFull: Counter
    private let sparsity: SparsityGauges
    /// Encodes and sends the answers of computed batches, beside the compute threads.
    private let answers = DispatchQueue(label: "pfc-predict-answers", qos: .userInitiated)

    /// A batcher recording `pfc_predict_batch_rows`, `pfc_predict_queue_delay_seconds` and
    /// `pfc_predict_queue_full_total` through `metrics`, and each batch's FISTA sparsity in `sparsity`.
    init(options: Options, metrics: any MetricsFactory, sparsity: SparsityGauges = SparsityGauges()) {
        self.options = options
        self.sparsity = sparsity
        let delay = options.maxDelay.components
        let ns = UInt64(clamping: max(0, delay.seconds) * 1_000_000_000 + max(0, delay.attoseconds) / 1_000_000_000)
        queue = PredictQueue(maxRows: options.maxRows, delayNanoseconds: ns, maxRequests: options.queueLimit)
        batchRows = Recorder(label: "pfc_predict_batch_rows", aggregate: true, factory: metrics)
        queueDelay = CoreMetrics.Timer(label: "pfc_predict_queue_delay_seconds", preferredDisplayUnit: .seconds, factory: metrics)
        queueFull = Counter(label: "pfc_predict_queue_full_total", factory: metrics)
    }

    /// Rows per part a request is cut into: the batch size, or 512 with batching off.
    var partRows: Int { queue.delayNanoseconds == 0 ? PredictController.predictChunkRows : queue.maxRows }

    /// Queues a validated request (`x`: features × rows) and returns at once; `ticket.answer` is
    /// answered from a compute thread. Throws 503 (Retry-After) when the queue is full.
    func submit(_ ticket: PredictTicket, key: PredictBatchKey, x: Matrix) throws {
        startThreads()
        let step = partRows
        var parts: [(rows: Int, item: PredictPart)] = []
        var index = 0
        for start in stride(from: 0, to: x.cols, by: step) {
            let cols = min(x.cols, start + step) - start
            let px = x.cols == cols ? x : x.columns(start..<(start + cols))
            parts.append((cols, PredictPart(ticket: ticket, index: index, offset: start, x: px)))
            index += 1
        }
        do {
            try queue.submit(key: key, request: ObjectIdentifier(ticket), parts: parts)
        } catch .full {
            queueFull.increment()
            counters.withLock { $0.queueFull += 1 }
            throw HTTPError(.serviceUnavailable, code: "predict_queue_full",
                            message: "\(options.queueLimit) predictions are waiting for a compute thread on this process; retry later",
                            headers: ["Retry-After": "\(options.retryAfterSeconds)"])
        } catch .closed {
            throw HTTPError(.serviceUnavailable, code: "shutting_down", message: "the server is shutting down",
                            headers: ["Retry-After": "\(options.retryAfterSeconds)"])
        }
    }

    /// Batches, parts and rows run so far, and the requests waiting now.
    public var stats: PredictBatchStats {
        var s = counters.withLock { $0 }
        s.waiting = queue.waitingRequests
        s.running = queue.runningBatches
        s.waitedForCompany = queue.waitedBatches
        s.forming = queue.formingBatches
        return s
    }

    /// Stops taking requests; the compute threads finish what is queued and end.
    public func shutdown() { queue.close() }

    /// Test hook: while held no batch starts, so requests queue up deterministically.
    func hold(_ on: Bool) { queue.setHeld(on) }

    /// Test hook: counts one more batch as computing while on (the next batches wait for company).
    func simulateBusy(_ on: Bool) { queue.simulateRunningBatch(on) }

    private func startThreads() {
        let first = started.withLock { s -> Bool in
            if s { return false }
            s = true
            return true
        }
        guard first else { return }
        for i in 0..<max(1, options.threads) {
            let thread = Thread { [self] in
                ComputeThreads.lowerCurrentThreadPriority()  // batches yield to the HTTP loops that feed them
                while let batch = queue.nextBatch() { run(batch) }
            }
            thread.name = "pfc-predict-\(i)"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// Runs one batch, tells the queue it is computed, and answers its parts.
    private func run(_ entries: [PredictQueue<PredictPart>.Entry]) {
        var computed = false
        defer { if !computed { queue.batchDone() } }
        let now = DispatchTime.now().uptimeNanoseconds
        var live: [PredictPart] = []
        for e in entries {
            if e.item.ticket.token.isCancelled {
                e.item.ticket.finish(part: e.item.index, .failed(requestAbandoned()))
                continue
            }
            queueDelay.recordNanoseconds(now >= e.enqueuedAt ? now - e.enqueuedAt : 0)
            live.append(e.item)
        }
        guard let first = live.first else { return }
        let rows = live.reduce(0) { $0 + $1.x.cols }
        batchRows.record(rows)
        counters.withLock { s in
            s.batches += 1
            s.parts += live.count
            s.rows += rows
            s.largestBatchRows = max(s.largestBatchRows, rows)
            s.largestBatchParts = max(s.largestBatchParts, live.count)
        }
        let x = live.count == 1 ? first.x : Self.concatenateColumns(live.map(\.x))
        let tickets = live.map(\.ticket)
        // The batch stops only when every request in it is abandoned; one leaving alone just loses its answer.
        let token = CancellationToken { tickets.allSatisfy { $0.token.isCancelled } }
        let ticket = first.ticket
        let ((out, expl, stepOutputs), passes) = FISTAStatistics.recording {
            ComputeCancellation.run(token) {
                PredictController.explain(ticket.network, x: x, top: ticket.top, everyStep: ticket.everyStep)
            }
        }
        if !token.isCancelled { sparsity.record(passes.last) }
        let predictions = token.isCancelled ? [] : out.columnArgmax()
        let perStep = ticket.everyStep && !token.isCancelled ? stepOutputs?.map { $0.columnArgmax() } : nil
        // The queue may give the next batch to a thread now (a client answered next sends its next
        // request at once), and this thread takes it while the answers are encoded and sent on the
        // answer queue: with one compute thread, answering 64 requests between batches left the
        // cores idle for a tenth of the time.
        queue.batchDone()
        computed = true
        let computedParts = live
        answers.async { Self.answer(computedParts, out: out, expl: expl, predictions: predictions, perStep: perStep) }
    }

    /// Answers the parts of a computed batch, each with its columns of the batch's outputs.
    private static func answer(_ live: [PredictPart], out: Matrix, expl: [[ExplanationDTO]], predictions: [Int], perStep: [[Int]]?) {
        var col = 0
        for part in live {
            let n = part.x.cols, range = col..<(col + n)
            col += n
            if part.ticket.token.isCancelled {
                part.ticket.finish(part: part.index, .failed(requestAbandoned()))
                continue
            }
            if let bad = range.first(where: { j in
                out.column(j).contains { !$0.isFinite } || expl[j].contains { !$0.activation.isFinite || !$0.contribution.isFinite }
            }) {
                part.ticket.finish(part: part.index, .failed(APIError.invalid(
                    "the model's outputs for inputs[\(part.offset + bad - range.lowerBound)] are not finite numbers "
                        + "(inputs too large for this model, or version \(part.ticket.version) diverged in training)")))
                continue
            }
            let steps = perStep.map { ps in range.map { b in ps.map { $0[b] } } }
            part.ticket.finish(part: part.index, .done(predictions: Array(predictions[range]), outputs: range.map { out.column($0) },
                                                       explanations: Array(expl[range]), steps: steps))
        }
    }

    /// The matrices side by side (all with the same rows).
    static func concatenateColumns(_ parts: [Matrix]) -> Matrix {
        let rows = parts[0].rows, total = parts.reduce(0) { $0 + $1.cols }
        var x = Matrix(rows: rows, cols: total)
        x.storage.withUnsafeMutableBufferPointer { dst in
            var c0 = 0
            for p in parts {
                p.storage.withUnsafeBufferPointer { src in
                    for i in 0..<rows {
                        (dst.baseAddress! + i * total + c0).update(from: src.baseAddress! + i * p.cols, count: p.cols)
                    }
                }
                c0 += p.cols
            }
        }
        return x
    }
}
