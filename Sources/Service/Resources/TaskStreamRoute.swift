// TaskStreamRoute: a continual-learning task whose examples arrive as an NDJSON request body;
// mini-batches train as they fill, and the response is the task's summary (research/pfc.md §3).
//
// Off the handler pool (issue 13): the handler only checks the request and loads the model, then
// returns a deferred response. The body is pushed by the connection, on its queue, to the task's
// inbox (at most `inboxLimit` bytes: past it the connection stops reading the socket until the
// trainer caught up). A training thread of the task's own (at most `maxConcurrent` per process;
// 503 beyond) splits lines, stages every mini-batch durably (`task_stream_batches`, migration 0005)
// and then trains it with one SLW step. Version, ledger and components are recorded only once the
// whole body trained; on a bad line, a body error or a client that went away nothing is recorded
// and the staged batches are dropped.
import Foundation
import Synchronization
import HTTP
import Linalg
import PFC
import Storage

/// Query options of `POST /v1/models/{id}/tasks/stream`.
struct StreamTaskOptions {
    var name: String
    var batchSize = 50
    var learningRate: Float = 3e-4
    var weightDecay: Float = 1e-4
    var window = 15
    var slide = 0.25
    var grow = false

    init(_ request: Request) throws {
        name = try DatasetUpload.validName(request.queryValue("name"))
        func number<T: LosslessStringConvertible>(_ key: String, _ fallback: T, valid: (T) -> Bool) throws -> T {
            guard let text = request.queryValue(key) else { return fallback }
            guard let v = T(text), valid(v) else { throw APIError.invalid("query parameter \(key)=\(text) is not valid") }
            return v
        }
        batchSize = try number("batch_size", batchSize) { (1...10_000).contains($0) }
        learningRate = try number("learning_rate", learningRate) { $0 > 0 && $0 <= 10 }
        weightDecay = try number("weight_decay", weightDecay) { $0 >= 0 && $0 < 1 }
        window = try number("window", window) { (1...5000).contains($0) }
        slide = try number("slide", slide) { $0 >= 0 && $0 <= 5000 }
        grow = try number("grow", grow) { _ in true }
    }
}

/// The summary a streamed task answers with.
struct StreamTaskSummary: Encodable {
    var task: Int
    var name: String
    var modelVersion: Int
    var examples: Int
    var batches: Int
    var columns: [Int]
    var grewBy: Int
    var meanLoss: Float
    var accuracy: Float
    enum CodingKeys: String, CodingKey {
        case task, name, examples, batches, columns, accuracy
        case modelVersion = "model_version", grewBy = "grew_by", meanLoss = "mean_loss"
    }
}

extension PFCService {
    func registerTaskStream(_ r: inout Router) {
        let limits = configuration.limits
        // Batches staged by a process that died mid-stream: dropped after a day (a live stream is never that old).
        _ = try? store.dropStaleStagedTaskBatches(before: Date().addingTimeInterval(-86_400))
        r.post("/v1/models/{id}/tasks/stream", options: .pushed(maxBodyBytes: limits.maxStreamedDatasetBytes)) { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            guard JSONCoding.mediaType(request) == "application/x-ndjson" else {
                throw APIError.unsupportedMediaType(JSONCoding.mediaType(request), accepted: ["application/x-ndjson"])
            }
            let options = try StreamTaskOptions(request)
            try quotas.admitJob(tenantID: tenant)
            let task = try StreamedTask(service: self, options: options, modelID: id, tenantID: tenant)
            guard case .pushed(let feed) = request.body else {
                // No body at all: nothing to train (the same answer as an empty stream).
                throw APIError.invalid("the stream held no examples")
            }
            guard let slot = StreamedTask.acquireSlot() else {
                throw HTTPError(.serviceUnavailable, code: "too_many_streams",
                                message: "\(StreamedTask.maxConcurrent) streamed tasks are training on this process; retry later "
                                    + "or queue the task as a job (POST /v1/models/{id}/tasks)", headers: ["Retry-After": "5"])
            }
            let answer = DeferredResponse()
            task.start(feed: feed, answer: answer, slot: slot)
            return .deferred(answer)
        }
    }
}

/// One streamed task: its inbox (filled on the connection's queue) and its training thread.
final class StreamedTask: @unchecked Sendable {
    /// Streamed tasks training at once on one process (each holds a thread of its own while its body arrives).
    static let maxConcurrent = 8
    /// Unread body bytes the inbox holds before the connection stops reading the socket.
    static let inboxLimit = 1 << 20
    private static let running = Atomic<Int>(0)

    /// A place among `maxConcurrent`, or nil when all are taken; released by deinit of the token.
    static func acquireSlot() -> Slot? {
        while true {
            let n = running.load(ordering: .acquiring)
            if n >= maxConcurrent { return nil }
            if running.compareExchange(expected: n, desired: n + 1, ordering: .acquiringAndReleasing).exchanged { return Slot() }
        }
    }

    final class Slot: Sendable {
        deinit { StreamedTask.running.subtract(1, ordering: .releasing) }
    }

    /// Streamed tasks training now (for tests).
    static var runningCount: Int { running.load(ordering: .acquiring) }

    // Set up on the handler thread, then touched only by the training thread.
    private let service: PFCService
    private let o: StreamTaskOptions
    private let modelID: String, tenantID: String
    private let streamID = StoreID.make()
    private let modelSpec: ModelSpec
    private let arch: Architecture
    private let latestVersion: Int
    /// The model's tasks and ledger rows when the stream began.
    private let usage: ContinualUsage
    private var network: any Network
    private var state: ContinualState
    private var optimizer: SlidingWindowOptimizer
    private var rows: [[Float]] = [], labels: [Int] = [], rowNumbers: [Int] = []
    private var records: [(rows: [Int], window: Range<Int>)] = []
    private var means = ActivationMeans()
    private var grewBy = 0, examples = 0, lossSum: Double = 0, correct = 0
    private var pending: [UInt8] = [], line = 0, total = 0
    private var staged = 0

    // The inbox, shared with the connection's queue; guarded by `inboxLock`.
    private let inboxLock = NSCondition()
    private var inbox: [[UInt8]] = []
    private var inboxBytes = 0
    private var paused = false
    private var ended: Result<HTTPHeaders, any Error>?

    /// Loads the model and checks the options (on the handler thread; errors are the handler's answer).
    init(service: PFCService, options: StreamTaskOptions, modelID: String, tenantID: String) throws {
        self.service = service
        self.o = options
        self.modelID = modelID
        self.tenantID = tenantID
        let store = service.store
        let (model, latest, usage) = try storeCall {
            try store.read { s in
                (try s.model(id: modelID, tenantID: tenantID), try s.latestModelVersion(modelID: modelID, tenantID: tenantID),
                 try s.continualUsage(modelID: modelID, tenantID: tenantID))
            }
        }
        // Room for one more task; its ledger rows are counted as the examples arrive (`add`).
        try service.configuration.limits.checkContinual(usage, adding: 0, what: "this streamed task")
        self.usage = usage
        modelSpec = try service.spec(of: model)
        arch = modelSpec.architecture
        guard arch.kind.blockCount > 0 else { throw APIError.invalid("the sliding window trains PFC basis columns; a \(arch.kind.rawValue) model has none") }
        if let problem = SlidingWindowOptimizer.scheduleProblem(width: options.window, slide: options.slide, start: 0) { throw APIError.invalid(problem) }
        // One batch's forward and backward pass runs at once: bound it like a prediction.
        try service.configuration.limits.checkInference(rows: options.batchSize, of: arch, what: "a streamed task batch")
        try service.configuration.limits.checkTraining(batch: options.batchSize, of: arch, what: "batch_size")
        network = try ModelFile.decode(Array(try storeCall { try store.modelWeights(modelID: modelID, version: latest.version, tenantID: tenantID) }))
        latestVersion = latest.version
        state = ContinualState(metrics: latest.metrics)
        optimizer = SlidingWindowOptimizer(learningRate: options.learningRate, weightDecay: options.weightDecay, width: options.window,
                                           slide: options.slide, start: state.nextWindowStart)
    }

    /// Starts the training thread and the body's delivery; `answer` gets the summary or the error.
    func start(feed: RequestBodyFeed, answer: DeferredResponse, slot: Slot) {
        let thread = Thread { [self] in
            ComputeThreads.lowerCurrentThreadPriority()  // training yields to the HTTP loops
            withExtendedLifetime(slot) { run(feed: feed, answer: answer) }
        }
        thread.name = "pfc-task-stream"
        thread.start()
        feed.start(RequestBodyConsumer(chunk: { [self] bytes in
            inboxLock.lock()
            defer { inboxLock.unlock() }
            inbox.append(bytes)
            inboxBytes += bytes.count
            inboxLock.signal()
            if inboxBytes >= Self.inboxLimit { paused = true; return .pause }
            return .more
        }, end: { [self] result in
            inboxLock.lock()
            ended = result
            inboxLock.signal()
            inboxLock.unlock()
        }))
    }

    /// The training thread: drains the inbox, stages and trains batches, records at the end.
    private func run(feed: RequestBodyFeed, answer: DeferredResponse) {
        do {
            while true {
                inboxLock.lock()
                while inbox.isEmpty && ended == nil { inboxLock.wait() }
                let chunks = inbox
                inbox = []
                inboxBytes = 0
                let resume = paused
                paused = false
                let end = chunks.isEmpty ? ended : nil
                inboxLock.unlock()
                if case .failure(let error)? = end { throw error }
                for chunk in chunks {
                    try feedBytes(chunk)
                    // The client went away or the body broke: stop at the next chunk, not at its end.
                    if case .failure(let error)? = inboxLock.withLock({ ended }) { throw error }
                }
                if resume { feed.resume() }
                if case .success? = end { break }
            }
            if !pending.isEmpty { try handleLine(pending[...]) }
            try trainBatch()
            guard !records.isEmpty else { throw APIError.invalid("the stream held no examples") }
            let summary = try record()
            try? service.store.dropStagedTaskBatches(streamID: streamID)
            answer.respond(try JSONCoding.response(summary, status: .created))
        } catch {
            if staged > 0 {
                do { try service.store.dropStagedTaskBatches(streamID: streamID) } catch {
                    service.logger.warning("could not drop a failed stream's staged batches (dropped after a day)",
                                           metadata: ["stream": "\(streamID)", "error": "\(error)"])
                }
            }
            answer.respond(Self.errorResponse(error))
        }
    }

    private static func errorResponse(_ error: any Error) -> Response {
        switch error {
        case let e as HTTPError: return e.response
        case let e as StoreError: return APIError.from(e).response
        case is ResponseBodyWriter.ClientDisconnected:
            return HTTPError(.badRequest, code: "client_disconnected", message: "client went away; nothing was stored").response
        default: return HTTPError(.internalServerError, message: "internal error").response
        }
    }

    // MARK: lines and batches (the training thread)

    private func feedBytes(_ chunk: [UInt8]) throws {
        let maxBytes = service.configuration.limits.maxStreamedDatasetBytes
        total += chunk.count
        if total > maxBytes { throw HTTPError(.contentTooLarge, message: "the body exceeds \(maxBytes) bytes") }
        pending.append(contentsOf: chunk)
        var start = 0
        while let nl = pending[start...].firstIndex(of: 10) {
            try handleLine(pending[start..<nl])
            start = nl + 1
        }
        pending.removeFirst(start)
        if pending.count > 16 << 20 { throw APIError.invalid("NDJSON line \(line + 1) is longer than 16 MiB") }
    }

    private func handleLine(_ bytes: ArraySlice<UInt8>) throws {
        line += 1
        if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { return }
        let example: NDJSONExample
        do { example = try JSONCoding.decode(NDJSONExample.self, from: Data(bytes)) } catch let e as HTTPError {
            throw NDJSONReader.lineError(e, line: line)
        }
        try add(example, line: line)
    }

    private func add(_ example: NDJSONExample, line: Int) throws {
        guard example.features.count == arch.inputDim else {
            throw APIError.invalid("NDJSON line \(line) has \(example.features.count) features but the model's input_dim is \(arch.inputDim)")
        }
        let values = example.features.map { Float($0) }
        if let col = values.firstIndex(where: { !$0.isFinite || (arch.nonnegative && $0 < 0) }) {
            throw APIError.invalid("NDJSON line \(line), column \(col + 1): not a finite\(arch.nonnegative ? " non-negative" : "") number")
        }
        guard case .one(let value) = example.label else {
            throw APIError.invalid("NDJSON line \(line): tasks take one label per example, not per-step labels")
        }
        let label = try DatasetUpload.integerLabel(value, row: line)
        guard label < arch.outputDim else { throw APIError.invalid("NDJSON line \(line): label \(label) ≥ output_dim \(arch.outputDim)") }
        rows.append(values); labels.append(label); rowNumbers.append(examples)
        examples += 1
        // Bound the whole stream's work too.
        let limits = service.configuration.limits
        if examples % o.batchSize == 0, (network.architecture.inferenceWork(rows: examples) ?? .max) > limits.maxStreamedTaskWork {
            throw APIError.invalid("the stream passed max_streamed_task_work (\(limits.maxStreamedTaskWork) multiply-adds) "
                + "after \(examples) examples; nothing was stored: split it into several tasks or queue it as a job (POST /v1/models/{id}/tasks)")
        }
        // Every example is one ledger row: the stream ends at the model's limit, nothing stored.
        if usage.ledgerRows + examples > limits.maxLedgerRowsPerModel {
            try limits.checkContinual(usage, adding: examples, what: "this streamed task (after \(examples) examples; nothing was stored)")
        }
        if rows.count == o.batchSize { try trainBatch() }
    }

    /// Stages the current batch, then trains it with one SLW step.
    private func trainBatch() throws {
        guard !rows.isEmpty else { return }
        try storeCall {
            try service.store.stageTaskBatch(streamID: streamID, batchIndex: records.count, tenantID: tenantID, modelID: modelID,
                                             firstRow: rowNumbers[0], features: rows.flatMap { $0 }, labels: labels)
        }
        staged += 1
        let needed = optimizer.window.upperBound
        if needed > network.architecture.basis {
            guard o.grow else {
                throw APIError.invalid("after \(examples) examples the window reaches column \(needed) but the model has K = "
                    + "\(network.architecture.basis); nothing was stored. Resend with grow=true or a smaller slide")
            }
            try service.configuration.limits.checkBasis(needed, of: network.architecture, action: "growing the model after \(examples) streamed examples")
            let extra = needed - network.architecture.basis
            do { network = try BasisGrowth.appendColumns(to: network, count: extra, seed: UInt64(grewBy + 7)) } catch {
                throw APIError.invalid("cannot grow the model: \(error)")
            }
            grewBy += extra
            // The grown model's batch is held to the same bounds as the first one was.
            let limits = service.configuration.limits
            try limits.checkInference(rows: rows.count, of: network.architecture, what: "a streamed task batch after growing to K = \(needed)")
            try limits.checkTraining(batch: rows.count, of: network.architecture, what: "a streamed task batch after growing to K = \(needed)")
        }
        var x = Matrix(rows: arch.inputDim, cols: rows.count)
        for (j, r) in rows.enumerated() { for i in 0..<arch.inputDim { x[i, j] = r[i] } }
        let result = network.lossAndGradients(x: x, labels: labels, gradientColumns: optimizer.window)  // all the step reads (§3)
        var params = network.parameters
        let window: Range<Int>
        do { window = try optimizer.stepChecked(&params, gradients: result.gradients) } catch {
            throw APIError.invalid("sliding window: \(error)")
        }
        network.parameters = params
        guard result.loss.isFinite, nonFiniteProblem(network) == nil else {
            throw APIError.invalid("training diverged after \(examples) streamed examples (the loss or weights became NaN or "
                + "infinite; try a smaller learning_rate); nothing was stored")
        }
        lossSum += Double(result.loss) * Double(rows.count)
        correct += zip(result.outputs.columnArgmax(), labels).filter { $0 == $1 }.count
        records.append((rowNumbers, window))
        means.add(network, inputs: x)  // the stream keeps no dataset: component means are gathered batch by batch
        rows.removeAll(keepingCapacity: true); labels.removeAll(keepingCapacity: true); rowNumbers.removeAll(keepingCapacity: true)
    }

    /// The whole body trained: record the task (one call into the record code) and summarize it.
    private func record() throws -> StreamTaskSummary {
        state.tasks += 1
        state.nextWindowStart = optimizer.position
        let trained = Set(records.flatMap { Array($0.window) })
        state.resetColumns.removeAll(where: trained.contains)
        let columns = [records.map(\.window.lowerBound).min()!, records.map(\.window.upperBound).max()!]
        var metrics = state.versionMetrics
        metrics.task = state.tasks; metrics.taskName = o.name; metrics.grewBy = grewBy; metrics.batches = records.count
        metrics.windowColumns = columns; metrics.streamedExamples = examples
        metrics.trainAccuracy = Double(correct) / Double(examples)
        let blocks = network.pfcBlocks.count
        let ledger = records.enumerated().map { i, r in
            LedgerBatch(task: state.tasks, epoch: 1, batchIndex: i, rows: r.rows, windows: Array(repeating: r.window, count: blocks), datasetID: nil)
        }
        // One call into the one version writer: version, ledger, component rows and the grown shape in one transaction.
        let commit = VersionCommit(
            modelID: modelID, tenantID: tenantID, parentVersion: latestVersion, reason: .task, network: network, metrics: metrics,
            ledger: ledger,
            components: blocks > 0 ? .measured(meanActivations: means.means, trained: trained, reset: Set(state.resetColumns),
                                               provenance: ComponentProvenance(jobID: nil, datasetID: nil, task: state.tasks)) : .none,
            grownSpec: grewBy > 0 ? ModelSpec(architecture: network.architecture, seed: modelSpec.seed) : nil,
            continualLimits: service.configuration.limits)
        let version = try storeCall { try VersionWriter(store: service.store).commit(commit) }.version
        return StreamTaskSummary(task: state.tasks, name: o.name, modelVersion: version, examples: examples, batches: records.count,
                                 columns: columns, grewBy: grewBy, meanLoss: Float(lossSum / Double(examples)),
                                 accuracy: Float(correct) / Float(examples))
    }
}

private extension NSCondition {
    func withLock<T>(_ body: () -> T) -> T { lock(); defer { unlock() }; return body() }
}
