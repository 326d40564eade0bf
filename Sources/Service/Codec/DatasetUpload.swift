// DatasetUpload: turns a POST /v1/datasets body (JSON, CSV or streamed NDJSON) into validated rows.
import Foundation
import Linalg
import HTTP
import PFC
import Storage

/// A parsed upload: its name, optional image shape, optional sequence form and the builder holding
/// its rows.
struct DatasetUpload {
    var name: String
    var imageShape: [Int]?
    var sequence: SequenceForm?
    var builder: DatasetBuilder

    static let mediaTypes = ["application/json", "text/csv", "application/x-ndjson", "application/x-npy"]

    /// Parses the request according to its content type; 415 for anything else. `contentFile` makes
    /// the store's content file for rows past the builder's buffer (`DatasetBuilder`).
    static func parse(_ request: Request, limits: ServiceLimits, contentFile: (() throws -> DatasetBlobFile?)? = nil) throws -> DatasetUpload {
        let type = JSONCoding.mediaType(request)
        switch type {
        case "application/json": return try json(request, limits: limits)
        case "text/csv": return try csv(request, limits: limits, contentFile: contentFile)
        case "application/x-ndjson", "application/ndjson": return try ndjson(request, limits: limits, contentFile: contentFile)
        case "application/x-npy", "application/npy": return try npy(request, limits: limits, contentFile: contentFile)
        default: throw APIError.unsupportedMediaType(type, accepted: mediaTypes)
        }
    }

    static func validName(_ name: String?) throws -> String {
        guard let name, !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw APIError.invalid("name is required (for CSV and NDJSON uploads, as the query parameter ?name=)")
        }
        guard name.count <= 200 else { throw APIError.invalid("name must be at most 200 characters") }
        try APIError.refuseNUL(name, field: "name")
        return name
    }

    static func validShape(_ shape: [Int]?, features: Int?) throws -> [Int]? {
        guard let shape, let features else { return nil }  // no rows: the builder refuses the upload
        return try ImageShape.validate(shape, features: features, name: "image_shape")
    }

    static func queryShape(_ request: Request) throws -> [Int]? {
        try request.queryValue("image_shape").map { try ImageShape.parse(query: $0, name: "image_shape") }
    }

    struct JSONBody: Decodable {
        var name: String?
        var featureRows: FlatOrNestedRows
        var labels: [UploadedLabel]
        var features: [[Double]] { featureRows.rows }
        var imageShape: [Int]?
        var sequenceLength: Int?
        var stepFeatures: Int?
        enum CodingKeys: String, CodingKey {
            case name, labels, featureRows = "features", imageShape, sequenceLength, stepFeatures
        }
    }

    /// Checks the features of a sequence dataset hold T·d numbers per example.
    static func checkForm(_ form: SequenceForm?, features: Int?) throws {
        guard let form, let d = features else { return }
        let (product, overflow) = form.steps.multipliedReportingOverflow(by: form.stepFeatures)
        guard !overflow, product == d else {
            throw APIError.invalid("the rows have \(d) features, not sequence_length × step_features = \(form.steps) × \(form.stepFeatures)")
        }
    }

    static func json(_ request: Request, limits: ServiceLimits) throws -> DatasetUpload {
        let bytes = try request.body.collect(maxBytes: limits.maxDatasetBytes)
        let body = try JSONCoding.decode(JSONBody.self, from: Data(bytes))
        let name = try validName(body.name)
        guard !body.features.isEmpty else { throw APIError.invalid("features must have at least one row") }
        guard body.features.count == body.labels.count else {
            throw APIError.invalid("features has \(body.features.count) rows but labels has \(body.labels.count)")
        }
        let form = try SequenceForm.merge(declared: try SequenceForm.declared(sequenceLength: body.sequenceLength, stepFeatures: body.stepFeatures),
                                          nested: body.featureRows.nestedForm, where: "features")
        let builder = DatasetBuilder()
        for (i, row) in body.features.enumerated() {
            let labels = try body.labels[i].values(form: form, row: i + 1)
            let values = row.map { Float($0) }
            if let col = values.firstIndex(where: { !$0.isFinite }) {
                throw APIError.invalid("row \(i + 1), column \(col + 1): \(row[col]) is not a finite 32-bit number")
            }
            try builder.append(labels: labels, features: values, row: i + 1)
        }
        try checkForm(form, features: builder.features)
        return DatasetUpload(name: name, imageShape: try validShape(body.imageShape, features: builder.features), sequence: form, builder: builder)
    }

    static func integerLabel(_ v: Double, row: Int, step: Int? = nil) throws -> Int {
        guard let n = CheckedSize.integer(v, in: 0...(LabeledDataset.labelLimit - 1)) else {
            throw APIError.invalid("row \(row)\(step.map { ", step \($0)" } ?? ""): label \(v) is not an integer in 0…\(LabeledDataset.labelLimit - 1)")
        }
        return n
    }

    /// Streams CSV lines into the builder as they arrive (byte-level parser, `CSVRowParser`): memory
    /// stays bounded by one line and the blob buffer; the limit is the streamed one.
    static func csv(_ request: Request, limits: ServiceLimits, contentFile: (() throws -> DatasetBlobFile?)? = nil) throws -> DatasetUpload {
        let name = try validName(request.queryValue("name"))
        let form = try SequenceForm.declared(query: request.queryValue)
        let shape = try queryShape(request)
        let builder = DatasetBuilder(compactIntegers: true, contentFile: contentFile)
        var parser = CSVRowParser(source: "body")
        let emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void = { label, row, line in
            try builder.appendRow(label: label, features: row, row: line)
        }
        func feed(_ chunk: [UInt8]) throws {
            do { try chunk.withUnsafeBytes { try parser.consume($0, emit: emit) } } catch let e as DatasetError { throw csvError(e) }
        }
        try forEachChunk(of: request.body, maxBytes: limits.maxStreamedDatasetBytes, feed)
        do { try parser.finish(emit: emit) } catch let e as DatasetError { throw csvError(e) }
        guard builder.examples > 0 else { throw APIError.invalid("CSV line \(max(1, parser.lineNumber)): the file has no examples") }
        try checkForm(form, features: builder.features)
        return DatasetUpload(name: name, imageShape: try validShape(shape, features: builder.features), sequence: form, builder: builder)
    }

    static func csvError(_ e: DatasetError) -> HTTPError {
        APIError.invalid("CSV line \(e.line)" + (e.column.map { ", column \($0)" } ?? "") + ": \(e.reason)")
    }

    /// Calls `body` with each chunk of the request body, refusing more than `maxBytes` in all.
    static func forEachChunk(of requestBody: RequestBody, maxBytes: Int, _ body: ([UInt8]) throws -> Void) throws {
        var total = 0
        func one(_ chunk: [UInt8]) throws {
            total += chunk.count
            if total > maxBytes { throw HTTPError(.contentTooLarge, message: "the body exceeds \(maxBytes) bytes") }
            try body(chunk)
        }
        switch requestBody {
        case .bytes(let b): try one(b)
        case .stream(let s): while let chunk = try s.next() { try one(chunk) }
        case .pushed: throw APIError.invalid("internal: a pushed body is read by its consumer")
        }
    }

    /// Streams NDJSON lines into the builder as they arrive: memory stays bounded by one line. The
    /// common flat line comes from `NDJSONReader`'s fast path straight into the builder.
    static func ndjson(_ request: Request, limits: ServiceLimits, contentFile: (() throws -> DatasetBlobFile?)? = nil) throws -> DatasetUpload {
        let name = try validName(request.queryValue("name"))
        let builder = DatasetBuilder(contentFile: contentFile)
        var form = try SequenceForm.declared(query: request.queryValue)
        try NDJSONReader.forEachLine(in: request.body, maxBytes: limits.maxStreamedDatasetBytes) { parsed, line in
            switch parsed {
            case .flat(let label, let features):
                try builder.appendRow(label: label, features: features, row: line)
            case .decoded(let example):
                // Nested lines imply the form; every line must agree with the first (or the declared) one.
                form = try SequenceForm.merge(declared: form, nested: example.nestedForm, where: "NDJSON line \(line)")
                let values = example.features.map { Float($0) }
                if let col = values.firstIndex(where: { !$0.isFinite }) {
                    throw APIError.invalid("row \(line), column \(col + 1): not a finite 32-bit number")
                }
                try builder.append(labels: try example.label.values(form: form, row: line), features: values, row: line)
            }
            if builder.examples == 1 { try checkForm(form, features: builder.features) }  // fail a bad stream early
        }
        try checkForm(form, features: builder.features)
        return DatasetUpload(name: name, imageShape: try validShape(try queryShape(request), features: builder.features), sequence: form, builder: builder)
    }
}
