// DatasetBlob: the binary layout of a stored dataset, written row by row and read back in chunks.
//
// Layout (little-endian), one label per example: magic "PFCDATA1" | features u32 | rows: label i32,
// features × f32. With L > 1 labels per example (sequences labelled per step, −1 = no target):
// magic "PFCDATA2" | features u32 | L u32 | rows: L × label i32, features × f32.
import Foundation
import Linalg
import PFC
import Storage

/// Builds a dataset blob from validated rows, spilling to a temporary file so an upload of any
/// size is held in memory only one buffer at a time.
final class DatasetBuilder {
    static let magic = Array("PFCDATA1".utf8)
    static let magicPerStep = Array("PFCDATA2".utf8)
    private(set) var features: Int?
    /// Labels per example, fixed by the first row: 1, or T for per-step labels.
    private(set) var labelsPerExample: Int?
    private(set) var examples = 0
    private(set) var maxLabel = -1
    /// The smallest feature seen.
    private(set) var minFeature = Float.infinity
    private var buffer: [UInt8] = []
    private var spill: FileHandle?
    private var spillURL: URL?
    private let flushBytes = 1 << 20

    deinit {
        try? spill?.close()
        if let spillURL { try? FileManager.default.removeItem(at: spillURL) }
    }

    /// Appends one row after validating it; `row` is the 1-based row number used in messages.
    func append(label: Int, features values: [Float], row: Int) throws {
        try append(labels: [label], features: values, row: row)
    }

    /// Appends one row with its labels (one, or one per step with −1 for no target).
    func append(labels: [Int], features values: [Float], row: Int) throws {
        if let d = features, d != values.count {
            throw APIError.invalid("row \(row) has \(values.count) features, expected \(d) (ragged rows)")
        }
        if let l = labelsPerExample, l != labels.count {
            throw APIError.invalid("row \(row) has \(labels.count) label(s) but row 1 has \(l): label every example once, or every step of every example")
        }
        if values.isEmpty { throw APIError.invalid("row \(row) has no features") }
        if labels.count == 1, labels[0] < 0 { throw APIError.invalid("row \(row): label \(labels[0]) must be a non-negative integer") }
        if let col = values.firstIndex(where: { !$0.isFinite }) {
            throw APIError.invalid("row \(row), column \(col + 1): feature is not a finite number")
        }
        if features == nil {
            features = values.count
            labelsPerExample = labels.count
            buffer.append(contentsOf: labels.count == 1 ? Self.magic : Self.magicPerStep)
            appendU32(UInt32(values.count))
            if labels.count > 1 { appendU32(UInt32(labels.count)) }
        }
        for label in labels { appendU32(UInt32(bitPattern: Int32(clamping: label))) }
        for v in values { appendU32(v.bitPattern); minFeature = Swift.min(minFeature, v) }
        examples += 1
        maxLabel = max(maxLabel, labels.max() ?? -1)
        if buffer.count >= flushBytes { try flush() }
    }

    /// `append(label:features:row:)` for a row in a buffer: the same checks, one copy of the floats.
    func appendRow(label: Int, features values: UnsafeBufferPointer<Float>, row: Int) throws {
        if let d = features, d != values.count {
            throw APIError.invalid("row \(row) has \(values.count) features, expected \(d) (ragged rows)")
        }
        if labelsPerExample != nil && labelsPerExample != 1 {
            throw APIError.invalid("row \(row) has 1 label but row 1 has \(labelsPerExample!): label every example once, or every step of every example")
        }
        if values.isEmpty { throw APIError.invalid("row \(row) has no features") }
        if label < 0 { throw APIError.invalid("row \(row): label \(label) must be a non-negative integer") }
        var least = minFeature
        for (col, v) in values.enumerated() {
            if !v.isFinite { throw APIError.invalid("row \(row), column \(col + 1): feature is not a finite number") }
            least = Swift.min(least, v)
        }
        if features == nil {
            features = values.count
            labelsPerExample = 1
            buffer.append(contentsOf: Self.magic)
            appendU32(UInt32(values.count))
        }
        appendU32(UInt32(bitPattern: Int32(clamping: label)))
        #if _endian(little)
        buffer.append(contentsOf: UnsafeRawBufferPointer(values))
        #else
        for v in values { appendU32(v.bitPattern) }
        #endif
        minFeature = least
        examples += 1
        maxLabel = max(maxLabel, label)
        if buffer.count >= flushBytes { try flush() }
    }

    private func appendU32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private func flush() throws {
        if spill == nil {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-upload-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            spill = try FileHandle(forUpdating: url)
            spillURL = url
        }
        try spill!.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Hands the finished blob to `body` as a chunk producer (1 MiB chunks); then the builder is spent.
    func withChunks<T>(_ body: (() throws -> Data?) throws -> T) throws -> T {
        guard examples > 0 else { throw APIError.invalid("the dataset has no examples") }
        if let spill {
            try spill.write(contentsOf: buffer)
            buffer.removeAll()
            try spill.seek(toOffset: 0)
            return try body {
                let d = try spill.read(upToCount: 1 << 20)
                return (d?.isEmpty ?? true) ? nil : d
            }
        }
        var sent = false
        let whole = Data(buffer)
        return try body {
            if sent { return nil }
            sent = true
            return whole
        }
    }
}

/// Reads a dataset blob back from its chunks.
struct DatasetBlobReader {
    /// Loads a stored dataset into memory, streaming its blob in chunks.
    static func load(from store: any Store, dataset: Dataset, tenantID: String, classes: Int) throws -> LabeledDataset {
        var reader = DatasetBlobReader()
        try store.readDatasetBlob(datasetID: dataset.id, tenantID: tenantID) { try reader.consume($0) }
        return try reader.finish(classes: max(classes, dataset.classes))
    }

    private var pending: [UInt8] = []
    private var features: Int?
    private var labelsPerExample = 1
    private var values: [Float] = []
    private var labels: [Int] = []

    /// Consumes the next chunk.
    mutating func consume(_ chunk: Data) throws {
        pending.append(contentsOf: chunk)
        if features == nil {
            guard pending.count >= 16 || (pending.count >= 12 && Array(pending[0..<8]) == DatasetBuilder.magic) else { return }
            let magic = Array(pending[0..<8])
            guard magic == DatasetBuilder.magic || magic == DatasetBuilder.magicPerStep else { throw DatasetBlobError.corrupt("bad magic") }
            features = Int(u32(at: 8))
            if magic == DatasetBuilder.magicPerStep {
                labelsPerExample = Int(u32(at: 12))
                guard labelsPerExample >= 1 else { throw DatasetBlobError.corrupt("zero labels per example") }
                pending.removeFirst(16)
            } else {
                pending.removeFirst(12)
            }
        }
        let d = features!, l = labelsPerExample, rowBytes = 4 * (d + l)
        let rows = pending.count / rowBytes
        values.reserveCapacity(values.count + rows * d)
        for r in 0..<rows {
            let base = r * rowBytes
            for i in 0..<l { labels.append(Int(Int32(bitPattern: u32(at: base + 4 * i)))) }
            for i in 0..<d { values.append(Float(bitPattern: u32(at: base + 4 * (l + i)))) }
        }
        pending.removeFirst(rows * rowBytes)
    }

    private func u32(at i: Int) -> UInt32 {
        UInt32(pending[i]) | UInt32(pending[i + 1]) << 8 | UInt32(pending[i + 2]) << 16 | UInt32(pending[i + 3]) << 24
    }

    /// The data set, once every chunk was consumed.
    func finish(classes: Int) throws -> LabeledDataset {
        guard let d = features, pending.isEmpty, !labels.isEmpty else { throw DatasetBlobError.corrupt("truncated dataset blob") }
        return LabeledDataset(features: Matrix(rows: labels.count / labelsPerExample, cols: d, storage: values), labels: labels,
                              classes: classes, labelsPerExample: labelsPerExample)
    }
}

/// A stored dataset blob that cannot be read.
enum DatasetBlobError: Error, CustomStringConvertible {
    case corrupt(String)
    var description: String { switch self { case .corrupt(let why): return "stored dataset is corrupt: \(why)" } }
}
