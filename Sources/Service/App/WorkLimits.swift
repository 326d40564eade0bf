// WorkLimits: what a request may cost, in sizes computed without overflow. Every figure that
// comes from a client (basis after growth, rows × work per row, image shapes) goes through here,
// so a limit holds whether the size came from creation, growth, forgetting or import.
import HTTP
import Linalg
import PFC
import Storage

extension Architecture {
    /// Weights in all matrices with basis `k` (the count the creation limit uses), nil on overflow.
    /// (The forward-pass cost the predict limit uses is `Architecture.inferenceWork(rows:)`, in PFC.)
    func weightCount(basis k: Int) -> Int? {
        var grown = self
        grown.basis = k
        return grown.parameterCount
    }
}

extension Dataset {
    /// Bytes this dataset takes loaded whole (`DatasetBlobReader.load`): its features as Floats and
    /// its labels as Ints. With `split` (training with a validation split) twice that, since the split
    /// copies it into its train and validation parts, plus three orders of 8 bytes per example (the
    /// split's permutation, its two halves and each epoch's shuffle). Nil on overflow.
    func loadedMemory(split: Bool) -> Int? {
        guard let features = CheckedSize.product(examples, features, 4),
              let labels = CheckedSize.product(examples, labelsPerExample, 8),
              let once = CheckedSize.sum(features, labels) else { return nil }
        guard split else { return once }
        return CheckedSize.sum(CheckedSize.product(once, 2), CheckedSize.product(examples, 8, 3))
    }
}

extension Dataset {
    /// Bytes `rows` of this dataset take read by row (`DatasetBlobReader.load(rows:)`, which holds
    /// them twice while it puts them in order): 4 per feature and 8 per label, twice. Nil on overflow.
    func rowsMemory(_ rows: Int) -> Int? {
        CheckedSize.product(2, max(0, rows), CheckedSize.sum(CheckedSize.product(features, 4), CheckedSize.product(labelsPerExample, 8)) ?? -1)
    }
}

extension LabeledDataset {
    /// Bytes this loaded dataset holds, counted as `Dataset.loadedMemory(split: false)` counts them.
    var heldBytes: Int { 4 * features.storage.count + 8 * labels.count }
}

extension ServiceLimits {
    /// 422 unless loading `dataset` whole (twice over with a validation split: `loadedMemory`) holds
    /// at most `maxWorkingMemory` bytes. Returns the bytes it holds.
    @discardableResult
    func checkDatasetLoad(_ dataset: Dataset, split: Bool, what: String) throws -> Int {
        if let bytes = dataset.loadedMemory(split: split), bytes <= maxWorkingMemory { return bytes }
        throw APIError.invalid("\(what): dataset \(dataset.id) (\(dataset.examples) examples × \(dataset.features) features) would hold "
            + (dataset.loadedMemory(split: split).map { "about \(sizeText($0))" } ?? "more memory than can be counted")
            + " in memory as floats" + (split ? ", twice over for the validation split" : "")
            + "; the limit max_working_memory is \(sizeText(maxWorkingMemory)): use a smaller dataset"
            + (split ? " or validation_fraction 0" : ""))
    }

    /// 422 unless a model of `arch` grown to basis `k` stays within the creation limits.
    func checkBasis(_ k: Int, of arch: Architecture, action: String) throws {
        guard k <= maxBasis else {
            throw APIError.invalid("\(action) would make K = \(k) basis columns; the limit max_basis is \(maxBasis)")
        }
        guard let weights = arch.weightCount(basis: k), weights <= maxParameters else {
            throw APIError.invalid("\(action) would make the model \(arch.weightCount(basis: k).map { "\($0)" } ?? "too many") weights; "
                + "the limit max_parameters is \(maxParameters)")
        }
    }

    /// 422 unless a training step over `batch` examples of `arch` holds at most `maxWorkingMemory`
    /// bytes (the tape of every FISTA iteration) beside the `reserved` bytes of its loaded dataset,
    /// naming the largest batch that fits.
    func checkTraining(batch: Int, of arch: Architecture, what: String, reserved: Int = 0) throws {
        let budget = maxWorkingMemory - min(max(0, reserved), maxWorkingMemory)
        if let bytes = arch.trainingMemory(batch: batch), bytes <= budget { return }
        let mib = arch.trainingMemory(batch: batch).map { "about \(sizeText($0))" } ?? "more memory than can be counted"
        var most = 0
        if let one = arch.trainingMemory(batch: 1), one <= budget, let fixed = arch.trainingMemory(batch: 0) {
            most = (budget - fixed) / max(1, one - fixed)
        }
        throw APIError.invalid("\(what): a training step over \(batch) examples would hold \(mib) (the FISTA tape of "
            + "\(max(1, arch.iterations)) iterations × \(batch) examples × K = \(arch.basis))"
            + (reserved > 0 ? " beside the \(sizeText(reserved)) of its dataset" : "")
            + "; the limit max_working_memory is \(sizeText(maxWorkingMemory))"
            + (most > 0 ? " (at most batch_size \(most) for this model)" : " (even one example exceeds it: reduce basis or iterations, or use a smaller dataset)"))
    }

    /// 422 unless computing and factorizing the PEFs `request` asks for, over `examples` rows of a
    /// model with `m` parameters and `classes` outputs, holds at most `maxWorkingMemory` bytes.
    /// `reserved`: the bytes of the dataset rows it reads (`Dataset.rowsMemory`), nil when too many to count.
    func checkAnalysis(_ request: AnalysisRequest, parameters m: Int, classes: Int, examples: Int, reserved: Int? = 0, what: String) throws {
        let bytes = CheckedSize.sum(request.workingMemory(parameters: m, classes: classes, examples: examples, threads: ComputeThreads.count), reserved)
        if let bytes, bytes <= maxWorkingMemory { return }
        throw APIError.invalid("\(what) over \(examples) examples of a model with \(m) parameters and \(classes) outputs would hold "
            + (bytes.map { "about \(sizeText($0))" } ?? "more memory than can be counted")
            + " (per-example Fisher factors: a vector of \(m) parameters per class kept, plus top_k \(request.topK) entries per example"
            + ((reserved ?? 1) > 0 ? ", and the examples read from the dataset" : "") + "); "
            + "the limit max_working_memory is \(sizeText(maxWorkingMemory)): use fewer examples, a smaller top_k, "
            + "a higher class_threshold (softmax) or a smaller model")
    }

    /// 422 unless one more task, recording `rows` more example rows in the ledger (epochs × training
    /// rows for a task job, the rows so far for a streamed task; nil: too many to count), keeps the
    /// model within `maxTasksPerModel` and `maxLedgerRowsPerModel`. With `counted`, `usage` already
    /// holds the new task and its rows (inside the transaction that writes them).
    func checkContinual(_ usage: ContinualUsage, adding rows: Int?, counted: Bool = false, what: String) throws {
        let before = counted ? usage.taskVersions - 1 : usage.taskVersions
        guard before < maxTasksPerModel else {
            throw APIError.invalid("\(what): the model already has \(before) tasks; the limit max_tasks_per_model is \(maxTasksPerModel) "
                + "(every task adds a row and a column to GET /v1/models/{id}/tasks/metrics): create a new model for further tasks")
        }
        let listed = counted ? usage.ledgerRows - (rows ?? 0) : usage.ledgerRows
        guard let rows, let total = CheckedSize.sum(listed, max(0, rows)), total <= maxLedgerRowsPerModel else {
            throw APIError.invalid("\(what) would record \(rows.map { "\($0)" } ?? "too many") trained example rows in the model's ledger "
                + "beside the \(listed) it lists; the limit max_ledger_rows_per_model is \(maxLedgerRowsPerModel) "
                + "(every epoch records each training row once, and a forget reads them all): use fewer epochs or a smaller dataset")
        }
    }

    /// 422 unless a forward pass of `rows` examples through `arch` is within `maxPredictWork`.
    func checkInference(rows: Int, of arch: Architecture, what: String) throws {
        guard let work = arch.inferenceWork(rows: rows), work <= maxPredictWork else {
            let perRow = arch.inferenceWork(rows: 1)
            let most = perRow.map { max(0, maxPredictWork / max(1, $0)) }
            throw APIError.invalid("\(what) of \(rows) rows would take \(arch.inferenceWork(rows: rows).map { "\($0)" } ?? "too many") "
                + "multiply-adds; the limit max_predict_work is \(maxPredictWork)"
                + (most.map { " (at most \($0) rows for this model)" } ?? ""))
        }
    }
}

/// Bytes in MiB, rounded up (a 1.9 MiB step over a 1 MiB limit reads "about 2 MiB").
private func mebibytes(_ bytes: Int) -> Int { bytes / (1 << 20) + (bytes % (1 << 20) == 0 ? 0 : 1) }

/// A size for a message: whole MiB from 1 MiB (rounded up), KiB below (a 20 KB dataset is not "1 MiB").
func sizeText(_ bytes: Int) -> String {
    bytes >= 1 << 20 ? "\(mebibytes(bytes)) MiB" : "\(bytes / 1024 + (bytes % 1024 == 0 ? 0 : 1)) KiB"
}

extension RequestContext {
    /// A compute token that reads as cancelled once this request's client is gone.
    var computeToken: CancellationToken {
        let flag = cancellation
        return CancellationToken { flag.isCancelled }
    }
}

/// The client went away (or the deadline passed) while its compute ran: nobody reads this answer.
func requestAbandoned() -> HTTPError {
    HTTPError(.serviceUnavailable, code: "cancelled", message: "the request was cancelled before it finished (client gone or deadline passed)")
}

/// Names the first weight matrix holding NaN or ±inf, or nil when every weight is finite. No
/// version with such weights is ever written: every later prediction on it would be meaningless.
func nonFiniteProblem(_ network: any Network) -> String? {
    for p in network.parameters where p.value.storage.contains(where: { !$0.isFinite }) {
        return "the weights \(p.name) are not finite numbers"
    }
    return nil
}
