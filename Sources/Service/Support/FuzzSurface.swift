// FuzzSurface: the public door the libFuzzer targets in Fuzz/PFCFuzz use to reach the Service
// module's internal request decoding and validation (the request DTOs, DatasetUpload, NDJSONReader,
// SequenceForm, Pagination, StreamTaskOptions). Every entry calls the same functions the routes call,
// with the default `ServiceLimits`, so a trap in validation is a crash here too. Not for other use.
//
// Errors thrown by the service (4xx answers) are the expected outcome of bad input and are swallowed;
// anything that traps is a finding. A few checks go further than "does not trap": where a route stores
// a validated request as JSON and a worker decodes it again, the round trip must give the same value
// (a failure there would be a 500 or a failed job for a request the service accepted).
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// Entry points for the fuzz targets (Fuzz/README.md): each calls what the routes call, with the
/// default limits, so any input that traps here would have stopped the server.
public enum FuzzSurface {
    static let limits = ServiceLimits()

    // MARK: - Requests built the way the server builds them

    /// A request for `path` with `query` (raw bytes, percent-encoded here so the handler sees exactly
    /// these bytes after decoding), the given content type and body, parsed by the real HTTP parser.
    static func request(method: String = "POST", path: String, query: [UInt8], contentType: String?, body: [UInt8]) -> Request? {
        var target = path
        if !query.isEmpty {
            target += "?"
            for b in query {
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "&"), UInt8(ascii: "="),
                     UInt8(ascii: ","):
                    target.unicodeScalars.append(Unicode.Scalar(b))
                default:
                    target += String(format: "%%%02X", b)
                }
            }
        }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: fuzz\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        var parser = HTTPRequestParser()
        let bytes = Array(head.utf8)
        guard let parsed = try? bytes.withUnsafeBytes({ try parser.parse($0) }), case .head(let h) = parsed.event else { return nil }
        return Request(head: h, body: .bytes(body))
    }

    /// Splits a fuzz input into a first line (the query) and the rest (the body).
    static func split(_ data: [UInt8]) -> (query: [UInt8], body: [UInt8]) {
        guard let nl = data.firstIndex(of: 10) else { return (data, []) }
        return (Array(data[..<nl].prefix(2000)), Array(data[(nl + 1)...]))
    }

    // MARK: - POST /v1/datasets: CSV, NDJSON and JSON bodies with their query parameters

    /// The dataset upload of `contentType` ("text/csv", "application/x-ndjson", "application/json"):
    /// the first line of `data` is the query string, the rest the body; runs `DatasetUpload.parse`
    /// (reader, labels, sequence form, image shape, builder) as `POST /v1/datasets` does.
    public static func datasetUpload(contentType: String, _ data: [UInt8]) {
        let (query, body) = split(data)
        guard let request = request(path: "/v1/datasets", query: query, contentType: contentType, body: body) else { return }
        guard let upload = try? DatasetUpload.parse(request, limits: limits) else { return }
        // The route's next steps: refuse an empty dataset, then store the builder's blob, which
        // training and evaluation read back with DatasetBlobReader; here the round trip is in memory.
        guard let features = upload.builder.features, upload.builder.examples > 0 else { return }
        let classes = max(upload.builder.maxLabel + 1, 1)
        _ = upload.imageShape.map { "[\($0[0]),\($0[1])]" }
        var reader = DatasetBlobReader()
        let read: LabeledDataset? = try? upload.builder.withChunks { next in
            while let chunk = try next() { try reader.consume(chunk) }
            return try reader.finish(classes: classes)
        }
        precondition(read != nil, "an accepted upload's blob does not read back")
        precondition(read!.count == upload.builder.examples && read!.featureCount == features
                     && read!.labelsPerExample == (upload.builder.labelsPerExample ?? 1), "an accepted upload reads back in another shape")
    }

    /// The CSV reader on its own, with the rules the CLI passes (`pfc-server train --data`): the first
    /// byte picks them.
    public static func csvReader(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let body = Array(data.dropFirst())
        let rules = CSVDatasetReader.Rules(requireNonNegative: selector & 1 != 0,
                                           classes: selector & 2 != 0 ? Int(selector >> 4) + 1 : nil,
                                           featureCount: selector & 4 != 0 ? Int(selector >> 4) % 8 + 1 : nil)
        guard let set = try? CSVDatasetReader.parse(Data(body), source: "fuzz", rules: rules) else { return }
        precondition(set.labels.count == set.count && set.features.count == set.count * set.featureCount, "inconsistent dataset")
        if let c = rules.classes { precondition(set.labels.allSatisfy { $0 >= 0 && $0 < c }, "label out of range accepted") }
    }

    // MARK: - JSON request bodies

    /// The JSON request types, by the first input byte (modulo the count).
    public static let requestKinds = ["create_model", "train", "task", "forget", "analysis", "fit", "perturb", "predict"]

    /// Decodes `body` as request type `kind` (an index into `requestKinds`) with `JSONCoding.decode`
    /// and applies the validation the route applies before it touches the store.
    public static func jsonRequest(kind: Int, _ body: [UInt8], examples: Int = 1000) {
        let data = Data(body)
        switch requestKinds[kind % requestKinds.count] {
        case "create_model":
            guard let b = try? JSONCoding.decode(CreateModelRequest.self, from: data),
                  let spec = try? PFCService.validate(b, limits: limits) else { return }
            // The route stores the spec as the model's architecture JSON and reads it back for every
            // later request (`spec(of:)`, 500 when unreadable).
            let json = try? JSONCoding.encoder.encode(spec)
            precondition(json != nil, "a validated model spec cannot be encoded: \(spec)")
            let back = try? JSONDecoder().decode(ModelSpec.self, from: json!)
            precondition(back == spec, "a validated model spec does not read back: \(spec)")
            // Building the network is the route's next step; bounded here to keep the fuzzer fast.
            let a = spec.architecture
            if a.inputDim * a.basis <= 20_000, a.outputDim * a.basis <= 20_000, a.basis <= 200, a.sequenceLength <= 50 {
                let network = NetworkFactory.make(a, seed: spec.seed)
                let file = ModelFile.encode(network)
                precondition((try? ModelFile.decode(file)) != nil, "a new model's file does not decode")
            }
        case "train":
            guard let b = try? JSONCoding.decode(TrainRequest.self, from: data),
                  let params = try? b.jobParams(limits: limits) else { return }
            // The validated value is the job's params; the worker decodes exactly it.
            roundTrip(params)
        case "task":
            guard let b = try? JSONCoding.decode(TaskRequest.self, from: data),
                  let params = try? b.jobParams(limits: limits, start: 0) else { return }
            let trainer = Trainer(options: params.options)
            // enqueueTask compares this with the model's K (the dataset's size comes from the store).
            _ = trainer.requiredBasis(trainingExamples: trainer.trainingExamples(fromDataSetOf: examples))
            roundTrip(params)
        case "forget":
            guard let b = try? JSONCoding.decode(ForgetRequest.self, from: data) else { return }
            // Stored in the audit record.
            precondition((try? JSONCoding.encoder.encode(b.auditJSON)) != nil, "a forget request's audit JSON cannot be encoded")
            // A large forget is queued with the request as its job's params.
            roundTrip(ForgetJobParams(request: b, baseVersion: 1))
        case "analysis":
            guard let b = try? JSONCoding.decode(AnalysisRequest.self, from: data), (try? b.validate()) != nil else { return }
            _ = b.pefOptions
            // Stored as the analysis's params; perturb and the worker decode them again.
            roundTrip(b)
        case "fit":
            guard let b = try? JSONCoding.decode(FitRequest.self, from: data) else { return }
            let params = AnalysisJobParams(analysisID: "a", operation: .fit, datasetID: b.datasetID, examples: b.examples, steps: b.steps)
            let json = try? JSONCoding.encoder.encode(params)
            precondition(json != nil && (try? JSONDecoder().decode(AnalysisJobParams.self, from: json!)) != nil, "fit params do not round-trip")
        case "perturb":
            guard let b = try? JSONCoding.decode(PerturbRequest.self, from: data) else { return }
            _ = b.targetKL.map { $0.count == 2 && $0[0].isFinite && $0[1].isFinite && $0[0] <= $0[1] ? $0[0]...$0[1] : nil }
        case "predict":
            guard let b = try? JSONCoding.decode(PredictRequest.self, from: data) else { return }
            let rows = b.inputs
            precondition(rows.count == b.rows.rows.count, "inputs lost rows")
            if let form = b.rows.nestedForm {
                precondition(rows.allSatisfy { $0.count == form.steps * form.stepFeatures }, "nested inputs flatten to the wrong width")
            }
        default: break
        }
    }

    static func roundTrip<T: Codable & Equatable>(_ value: T) {
        let json = try? JSONCoding.encoder.encode(value)
        precondition(json != nil, "a validated \(T.self) cannot be stored as JSON: \(value)")
        let back = try? JSONDecoder().decode(T.self, from: json!)
        precondition(back == value, "a validated \(T.self) does not read back the same: \(value) → \(String(describing: back))")
    }

    // MARK: - Query parameters

    /// Every query-parameter parser that does not need the store, on the query string `data`:
    /// pagination, the sequence form and image shape of uploads, the streamed task's options (and the
    /// schedule check that route runs next), `?block=` and the component image's `?shape=`.
    public static func queryParameters(_ data: [UInt8]) {
        guard let request = request(method: "GET", path: "/q", query: Array(data.prefix(4000)), contentType: nil, body: []) else { return }
        if let page = try? Pagination(request) {
            precondition((1...1000).contains(page.limit) && page.offset >= 0, "pagination out of range")
        }
        if let form = try? SequenceForm.declared(query: request.queryValue) {
            precondition(form.steps >= 1 && form.stepFeatures >= 1, "a sequence form with no steps")
            _ = try? DatasetUpload.checkForm(form, features: Int(data.count))
        }
        if let shape = try? DatasetUpload.queryShape(request) {
            _ = try? DatasetUpload.validShape(shape, features: 64)
            _ = try? DatasetUpload.validShape(shape, features: nil)
        }
        if let o = try? StreamTaskOptions(request) {
            _ = SlidingWindowOptimizer.scheduleProblem(width: o.window, slide: o.slide, start: 0)
        }
        for network in networks { _ = try? ComponentController.blockIndex(request.queryValue("block"), network: network) }
        if let q = request.queryValue("shape"), let service {
            _ = try? ComponentController(store: service.store, models: service.models).imageShape(modelID: "m", version: 0, tenantID: "t", features: 784, query: q)
        }
    }

    /// One small network of each kind with basis vectors (for `?block=`).
    static let networks: [any Network] = [
        NetworkFactory.make(Architecture(kind: .pfc, inputDim: 4, outputDim: 2, basis: 3, iterations: 2, loss: .labelsMSE, labelLossWeight: 0.5, nonnegative: true), seed: 1),
        NetworkFactory.make(Architecture(kind: .pfc2, inputDim: 4, outputDim: 2, basis: 3, iterations: 2, loss: .labelsMSE, labelLossWeight: 0.5, nonnegative: true), seed: 1),
        NetworkFactory.make(Architecture(kind: .mlp, inputDim: 4, outputDim: 2, basis: 3, iterations: 2, loss: .labelsMSE, labelLossWeight: 0.5, nonnegative: false), seed: 1),
    ]

    /// A service over a throwaway SQLite file, for the instance methods whose query branch never
    /// reads the store (`imageShape` with `?shape=`).
    static let service: PFCService? = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-fuzz-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let store = try? SQLiteStore(path: dir.appendingPathComponent("fuzz.sqlite").path, readers: 1) else { return nil }
        var config = ServiceConfiguration()
        config.dataDirectory = dir.path
        config.accessLog = false
        return PFCService(store: store, configuration: config)
    }()

    /// The weight count of the model a `POST /v1/models` body would create once validated, nil when
    /// it is refused (the routes target keeps real creations small so the fuzzer stays fast).
    public static func createdModelWeights(_ body: [UInt8]) -> Int? {
        guard let b = try? JSONCoding.decode(CreateModelRequest.self, from: Data(body)),
              let spec = try? PFCService.validate(b, limits: limits) else { return nil }
        return spec.architecture.parameterCount
    }

    // MARK: - Model files

    /// `ModelFile.decode` of `data`, then what the service does with a loaded version: predictions
    /// with explanations and the component list. `fixChecksum` rewrites the last four bytes to the
    /// CRC-32 of the rest so mutations get past the checksum into the parser and network factory.
    public static func modelFile(_ data: [UInt8], fixChecksum: Bool) {
        var bytes = data
        if fixChecksum, bytes.count >= 4 {
            let crc = CRC32.checksum(bytes[0..<(bytes.count - 4)])
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((bytes.count - 4)..., with: $0) }
        }
        guard let network = try? ModelFile.decode(bytes) else { return }
        let arch = network.architecture
        let again = try? ModelFile.decode(ModelFile.encode(network))
        precondition(again != nil, "a decoded model does not survive encode → decode")
        // Predict (the route's explain) and the component list, on one zero example when cheap.
        guard arch.featureCount * arch.basis <= 50_000, arch.iterations <= 50, arch.sequenceLength <= 20 else { return }
        let x = Matrix(rows: arch.featureCount, cols: 1)
        _ = PredictController.explain(network, x: x, top: 5, everyStep: arch.kind.isSequence)
        if let f = ComponentController.factors(of: network, block: 0) {
            _ = ComponentController.columnNorms(f.0); _ = ComponentController.columnNorms(f.1)
        }
    }
}
