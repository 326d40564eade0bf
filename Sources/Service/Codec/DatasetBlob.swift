// DatasetBlob: the binary layout of a stored dataset, written row by row and read back in chunks.
//
// Layouts (little-endian); the magic says which, so blobs of every version stay readable:
// - "PFCDATA1" | features u32 | rows: label i32, features × f32 (one label per example).
// - "PFCDATA2" | features u32 | L u32 | rows: L × label i32, features × f32 (L > 1 labels per example:
//   sequences labelled per step, −1 = no target).
// - "PFCDATA3" | features u32 | scale f64 | rows: label u8, features × u8: the compact form of a uint8
//   upload (`.npy` `|u1`, or a CSV whose labels and features are all whole numbers in 0…255, scale 1),
//   a quarter of the float32 size; feature b reads as `Float(Double(b) * scale)`, exactly the value the
//   float32 form of the same upload stores.
// `DatasetBlobReader` is the one decode point: training, tasks, predict and NPEFF on stored datasets
// all load through it.
import Foundation
import Linalg
import PFC
import Storage

/// Builds a dataset blob from validated rows, holding at most one buffer (`flushBytes`) in memory:
/// past it, the rows go to the store's content file when the store keeps large payloads in files
/// (SQLite, `DatasetBlobFile`: written once, attached to the row afterwards, `finishFile()`), else to a
/// temporary spill file that `withChunks` streams into the database.
final class DatasetBuilder {
    static let magic = Array("PFCDATA1".utf8)
    static let magicPerStep = Array("PFCDATA2".utf8)
    static let magicBytes = Array("PFCDATA3".utf8)

    /// How feature values are stored.
    enum Encoding: Equatable {
        /// Rows of float32 features (every reader but `.npy` uint8).
        case float32
        /// Rows of one byte per feature and a one-byte label; a value is `Float(Double(b) * scale)`.
        case uint8(scale: Double)
    }

    private(set) var encoding: Encoding
    /// While set (CSV uploads), rows whose label and features are all whole numbers in 0…255 (not −0)
    /// go to the compact uint8 form with scale 1; the first row that is not converts the rows so far to
    /// float32 rows, once, and the upload goes on in float32.
    private var compactWhileBytes: Bool
    private(set) var features: Int?
    /// Labels per example, fixed by the first row: 1, or T for per-step labels.
    private(set) var labelsPerExample: Int?
    private(set) var examples = 0
    private(set) var maxLabel = -1
    /// The smallest feature seen.
    private(set) var minFeature = Float.infinity
    private var minByte = UInt8.max
    private var buffer: [UInt8] = []
    private var spill: FileHandle?
    private var spillURL: URL?
    /// Makes the store's content file for rows past the buffer; nil (or a nil answer): a spill file.
    private let makeFile: (() throws -> DatasetBlobFile?)?
    private var file: DatasetBlobFile?
    private var fileRefused = false
    /// Bytes held in memory before they go to the spill file.
    let flushBytes: Int
    /// The most bytes the builder held in memory at once (for tests of the memory bound).
    private(set) var peakBuffered = 0
    /// Bytes written to the spill file.
    private(set) var spilledBytes = 0

    init(encoding: Encoding = .float32, flushBytes: Int = 4 << 20, compactIntegers: Bool = false,
         contentFile: (() throws -> DatasetBlobFile?)? = nil) {
        self.makeFile = contentFile
        self.encoding = encoding
        self.compactWhileBytes = compactIntegers && encoding == .float32
        self.flushBytes = flushBytes
        buffer.reserveCapacity(flushBytes + (64 << 10))
    }

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
        if labels.count == 1 {
            try values.withUnsafeBufferPointer { try appendRow(label: labels[0], features: $0, row: row) }
            return
        }
        precondition(encoding == .float32, "rows of floats go to a float32 builder")
        if let d = features, d != values.count {
            throw APIError.invalid("row \(row) has \(values.count) features, expected \(d) (ragged rows)")
        }
        if let l = labelsPerExample, l != labels.count {
            throw APIError.invalid("row \(row) has \(labels.count) label(s) but row 1 has \(l): label every example once, or every step of every example")
        }
        if values.isEmpty { throw APIError.invalid("row \(row) has no features") }
        if let col = values.firstIndex(where: { !$0.isFinite }) {
            throw APIError.invalid("row \(row), column \(col + 1): feature is not a finite number")
        }
        if features == nil {
            features = values.count
            labelsPerExample = labels.count
            buffer.append(contentsOf: Self.magicPerStep)
            appendU32(UInt32(values.count))
            appendU32(UInt32(labels.count))
        }
        for label in labels { appendU32(UInt32(bitPattern: Int32(clamping: label))) }
        values.withUnsafeBufferPointer { appendFloats($0) }
        for v in values { minFeature = Swift.min(minFeature, v) }
        examples += 1
        maxLabel = max(maxLabel, labels.max() ?? -1)
        if buffer.count >= flushBytes { try flush() }
    }

    /// One row of one label and its features: the same checks, one copy of the floats.
    func appendRow(label: Int, features values: UnsafeBufferPointer<Float>, row: Int) throws {
        precondition(encoding == .float32 || compactWhileBytes, "rows of floats go to a float32 builder")
        if let d = features, d != values.count {
            throw APIError.invalid("row \(row) has \(values.count) features, expected \(d) (ragged rows)")
        }
        if let l = labelsPerExample, l != 1 {
            throw APIError.invalid("row \(row) has 1 label(s) but row 1 has \(l): label every example once, or every step of every example")
        }
        if values.isEmpty { throw APIError.invalid("row \(row) has no features") }
        if label < 0 { throw APIError.invalid("row \(row): label \(label) must be a non-negative integer") }
        // One pass for both checks: a NaN never lowers `least`, so test finiteness on the side.
        var least = minFeature
        var finite = true
        for v in values {
            finite = finite && v.isFinite
            least = Swift.min(least, v)
        }
        if !finite, let col = values.firstIndex(where: { !$0.isFinite }) {
            throw APIError.invalid("row \(row), column \(col + 1): feature is not a finite number")
        }
        if compactWhileBytes {
            if label <= 255 && values.allSatisfy({ $0.sign == .plus && $0 <= 255 && $0 == $0.rounded(.towardZero) }) {
                if features == nil {
                    features = values.count
                    labelsPerExample = 1
                    encoding = .uint8(scale: 1)
                    buffer.append(contentsOf: Self.magicBytes)
                    appendU32(UInt32(values.count))
                    withUnsafeBytes(of: (1.0).bitPattern.littleEndian) { buffer.append(contentsOf: $0) }
                }
                buffer.append(UInt8(label))
                for v in values { buffer.append(UInt8(v)) }
                minFeature = least
                examples += 1
                maxLabel = max(maxLabel, label)
                if buffer.count >= flushBytes { try flush() }
                return
            }
            compactWhileBytes = false
            try convertToFloat32()
        }
        if features == nil {
            features = values.count
            labelsPerExample = 1
            buffer.append(contentsOf: Self.magic)
            appendU32(UInt32(values.count))
        }
        appendU32(UInt32(bitPattern: Int32(clamping: label)))
        appendFloats(values)
        minFeature = least
        examples += 1
        maxLabel = max(maxLabel, label)
        if buffer.count >= flushBytes { try flush() }
    }

    /// Whole rows of a uint8 upload, each `1 + d` bytes (the label, then d features), stored as
    /// they are. A byte is always a valid label and a finite feature, so there is nothing to refuse.
    func appendByteRows(_ rows: UnsafeRawBufferPointer, features d: Int) throws {
        guard case .uint8(let scale) = encoding else { preconditionFailure("byte rows go to a uint8 builder") }
        precondition(d >= 1 && rows.count % (d + 1) == 0, "whole rows of 1 + d bytes")
        let count = rows.count / (d + 1)
        guard count > 0, let base = rows.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        if features == nil {
            features = d
            labelsPerExample = 1
            buffer.append(contentsOf: Self.magicBytes)
            appendU32(UInt32(d))
            withUnsafeBytes(of: scale.bitPattern.littleEndian) { buffer.append(contentsOf: $0) }
        }
        // The smallest feature byte, 16 at a time (the rows are not aligned: unaligned loads).
        var least = minByte, most = UInt8(0)
        var lanes = SIMD16<UInt8>(repeating: least)
        for r in 0..<count {
            let row = base + r * (d + 1)
            most = Swift.max(most, row[0])
            let features = UnsafeRawPointer(row + 1)
            var i = 0
            while i + 16 <= d {
                lanes = pointwiseMin(lanes, features.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self))
                i += 16
            }
            while i < d { least = Swift.min(least, row[1 + i]); i += 1 }
        }
        least = Swift.min(least, lanes.min())
        minByte = least
        minFeature = Float(Double(least) * scale)
        maxLabel = max(maxLabel, Int(most))
        examples += count
        var offset = 0
        while offset < rows.count {
            let n = Swift.min(rows.count - offset, Swift.max(flushBytes - buffer.count, 1))
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: rows[offset..<(offset + n)]))
            offset += n
            if buffer.count >= flushBytes { try flush() }
        }
    }

    /// Rewrites the compact rows written so far (buffer and spill file) as float32 rows.
    private func convertToFloat32() throws {
        guard case .uint8(let scale) = encoding, let d = features else { return }
        let oldSpill = spill, oldFile = file, oldBuffer = buffer
        spill = nil
        file = nil  // a new content file for the float32 rows; the old one is unlinked when it goes
        spilledBytes = 0
        buffer = []
        buffer.reserveCapacity(flushBytes + (64 << 10))
        encoding = .float32
        buffer.append(contentsOf: Self.magic)
        appendU32(UInt32(d))
        let rowBytes = 1 + d
        var skip = 20  // the compact header
        var carry: [UInt8] = []
        var floats = [Float](repeating: 0, count: d)
        func feed(_ chunk: UnsafeRawBufferPointer) throws {
            var work = carry
            work.append(contentsOf: chunk)
            let start = Swift.min(skip, work.count)
            skip -= start
            let rows = (work.count - start) / rowBytes
            try work.withUnsafeBufferPointer { w in
                for r in 0..<rows {
                    let row = w.baseAddress! + start + r * rowBytes
                    appendU32(UInt32(row[0]))
                    for i in 0..<d { floats[i] = Float(Double(row[1 + i]) * scale) }
                    floats.withUnsafeBufferPointer { appendFloats($0) }
                    if buffer.count >= flushBytes { try flush() }
                }
            }
            carry = Array(work[(start + rows * rowBytes)...])
        }
        if let oldSpill {
            try oldSpill.seek(toOffset: 0)
            while let chunk = try oldSpill.read(upToCount: datasetChunkSize), !chunk.isEmpty { try chunk.withUnsafeBytes { try feed($0) } }
            try oldSpill.close()
        }
        try oldFile?.readBack { try feed($0) }
        try oldBuffer.withUnsafeBytes { try feed($0) }
        precondition(carry.isEmpty && skip == 0, "the compact rows convert whole")
    }

    private func appendU32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
    }

    private func appendFloats(_ values: UnsafeBufferPointer<Float>) {
        #if _endian(little)
        buffer.append(contentsOf: UnsafeRawBufferPointer(values))
        #else
        for v in values { appendU32(v.bitPattern) }
        #endif
    }

    private func flush() throws {
        peakBuffered = max(peakBuffered, buffer.count)
        if file == nil && spill == nil && !fileRefused, let makeFile {
            file = try makeFile()
            fileRefused = file == nil
        }
        if let file {
            try buffer.withUnsafeBytes { try file.write($0) }
            spilledBytes += buffer.count
            buffer.removeAll(keepingCapacity: true)
            return
        }
        if spill == nil {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-upload-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            spill = try FileHandle(forUpdating: url)
            spillURL = url
            // The file is only ever read through this handle: unlink it now, so nothing is left
            // behind if the process dies mid-upload.
            try? FileManager.default.removeItem(at: url)
            spillURL = nil
        }
        try buffer.withUnsafeBytes { try spill!.write(contentsOf: $0) }
        spilledBytes += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// When the rows went to the store's content file: writes the rest, makes it durable
    /// (`DatasetBlobFile.finish`, outside any transaction) and returns it for `attachDatasetBlob`; then
    /// the builder is spent. Nil when the rows are in memory or a spill file: use `withChunks`.
    func finishFile() throws -> DatasetBlobFile? {
        guard examples > 0 else { throw APIError.invalid("the dataset has no examples") }
        guard let file else { return nil }
        if !buffer.isEmpty { try flush() }
        try file.finish()
        return file
    }

    /// Hands the finished blob to `body` as a chunk producer (`datasetChunkSize` chunks); then the
    /// builder is spent.
    func withChunks<T>(_ body: (() throws -> Data?) throws -> T) throws -> T {
        guard examples > 0 else { throw APIError.invalid("the dataset has no examples") }
        peakBuffered = max(peakBuffered, buffer.count)
        if let file {
            if !buffer.isEmpty { try flush() }
            var offset = 0
            return try body {
                guard offset < file.byteCount else { return nil }
                let chunk = try file.readChunk(offset: offset, maxCount: datasetChunkSize)
                offset += chunk.count
                return chunk
            }
        }
        if let spill {
            try flush()
            try spill.seek(toOffset: 0)
            return try body {
                let d = try spill.read(upToCount: datasetChunkSize)
                return (d?.isEmpty ?? true) ? nil : d
            }
        }
        var offset = 0
        let whole = Data(buffer)
        buffer = []
        return try body {
            guard offset < whole.count else { return nil }
            let end = Swift.min(offset + datasetChunkSize, whole.count)
            defer { offset = end }
            return whole.subdata(in: offset..<end)
        }
    }
}

/// Reads a dataset blob back from its chunks: the one decode point of every stored form.
struct DatasetBlobReader {
    /// Loads a stored dataset into memory, streaming its blob in chunks; 422 naming
    /// `max_working_memory` first when it would hold more than `limits` allow (`Dataset.loadedMemory`).
    static func load(from store: any Store, dataset: Dataset, tenantID: String, classes: Int, limits: ServiceLimits) throws -> LabeledDataset {
        try limits.checkDatasetLoad(dataset, split: false, what: "loading a dataset")
        var reader = DatasetBlobReader(expectedValues: CheckedSize.product(dataset.examples, dataset.features).map { min($0, 1 << 31) } ?? 0,
                                       expectedExamples: min(max(0, dataset.examples), 1 << 31))
        try store.readDatasetBlob(datasetID: dataset.id, tenantID: tenantID) { try reader.consume($0) }
        return try reader.finish(classes: max(classes, dataset.classes))
    }

    /// Only the rows `rows` of a stored dataset (0-based, in that order, repeats allowed; a row past
    /// the end is skipped). Only the header and those rows' bytes are read (`readDatasetBlobRanges`):
    /// memory and time are what those rows take, not the dataset (a 1 GiB byte dataset is 4 GB as
    /// floats), so a handler may read a few rows of any dataset.
    static func load(from store: any Store, dataset: Dataset, tenantID: String, classes: Int, rows: [Int]) throws -> LabeledDataset {
        let wanted = Array(Set(rows.filter { $0 >= 0 && $0 < dataset.examples })).sorted()
        guard !wanted.isEmpty else { throw APIError.invalid("none of the rows asked for is in dataset \(dataset.id)") }
        var header = Data()
        try store.readDatasetBlobRanges(datasetID: dataset.id, tenantID: tenantID, [0..<min(Layout.maxHeaderBytes, max(0, dataset.byteSize))]) {
            header = $0
        }
        let layout = try Layout(header: header)
        guard let body = CheckedSize.product(dataset.examples, layout.rowBytes), CheckedSize.sum(layout.headerBytes, body) == dataset.byteSize else {
            throw DatasetBlobError.corrupt("its \(dataset.byteSize) bytes are not \(dataset.examples) rows of \(layout.rowBytes)")
        }
        // The header, then each run of consecutive wanted rows as one range.
        var ranges = [0..<layout.headerBytes]
        for r in wanted {
            let start = layout.headerBytes + r * layout.rowBytes
            if ranges.count > 1, let last = ranges.last, last.upperBound == start {
                ranges[ranges.count - 1] = last.lowerBound..<(start + layout.rowBytes)
            } else {
                ranges.append(start..<(start + layout.rowBytes))
            }
        }
        var reader = DatasetBlobReader(expectedValues: CheckedSize.product(wanted.count, dataset.features) ?? 0, expectedExamples: wanted.count)
        try store.readDatasetBlobRanges(datasetID: dataset.id, tenantID: tenantID, ranges) { try reader.consume($0) }
        let kept = try reader.finish(classes: max(classes, dataset.classes))
        guard kept.count == wanted.count else { throw DatasetBlobError.corrupt("truncated dataset blob") }
        let position = Dictionary(uniqueKeysWithValues: wanted.enumerated().map { ($1, $0) })
        let order = rows.compactMap { position[$0] }
        let d = kept.featureCount, l = kept.labelsPerExample
        var features = [Float](), labels = [Int]()
        features.reserveCapacity(order.count * d)
        labels.reserveCapacity(order.count * l)
        for i in order {
            features += kept.features.storage[(i * d)..<((i + 1) * d)]
            labels += kept.labels[(i * l)..<((i + 1) * l)]
        }
        return LabeledDataset(features: Matrix(rows: order.count, cols: d, storage: features), labels: labels,
                              classes: kept.classes, labelsPerExample: l)
    }

    /// Where a blob's rows start and how long each is, from its header (the magic says which form).
    struct Layout {
        static let maxHeaderBytes = 20
        let headerBytes: Int
        let rowBytes: Int

        init(header: Data) throws {
            let h = Array(header.prefix(Self.maxHeaderBytes))
            guard h.count >= 12 else { throw DatasetBlobError.corrupt("truncated dataset blob") }
            func u32(_ i: Int) -> Int { Int(h[i]) | Int(h[i + 1]) << 8 | Int(h[i + 2]) << 16 | Int(h[i + 3]) << 24 }
            let d = u32(8)
            guard d >= 1 else { throw DatasetBlobError.corrupt("zero features") }
            switch Array(h[0..<8]) {
            case DatasetBuilder.magic: headerBytes = 12; rowBytes = 4 * (d + 1)
            case DatasetBuilder.magicPerStep:
                guard h.count >= 16 else { throw DatasetBlobError.corrupt("truncated dataset blob") }
                let l = u32(12)
                guard l >= 1 else { throw DatasetBlobError.corrupt("zero labels per example") }
                headerBytes = 16; rowBytes = 4 * (d + l)
            case DatasetBuilder.magicBytes:
                guard h.count >= 20 else { throw DatasetBlobError.corrupt("truncated dataset blob") }
                headerBytes = 20; rowBytes = 1 + d
            default: throw DatasetBlobError.corrupt("bad magic")
            }
        }
    }

    private enum Form {
        case float32(labels: Int)
        /// Byte features through this table of 256 values.
        case uint8(table: [Float])
    }

    private var pending: [UInt8] = []
    private var features: Int?
    private var form = Form.float32(labels: 1)
    private var labelsPerExample = 1
    private var values: [Float] = []
    private var labels: [Int] = []
    private let expectedValues: Int
    private let expectedExamples: Int

    /// A reader; `expectedValues` (examples × features, when known) reserves the features once, and
    /// `expectedExamples` the labels. (Reserving per chunk instead would reallocate to the exact size
    /// every time and copy the labels once per chunk: quadratic in the dataset.)
    init(expectedValues: Int = 0, expectedExamples: Int = 0) {
        self.expectedValues = expectedValues
        self.expectedExamples = expectedExamples
    }

    /// Consumes the next chunk.
    mutating func consume(_ chunk: Data) throws {
        pending.append(contentsOf: chunk)
        if features == nil {
            guard pending.count >= 8 else { return }
            let magic = Array(pending[0..<8])
            let headerBytes: Int
            switch magic {
            case DatasetBuilder.magic: headerBytes = 12
            case DatasetBuilder.magicPerStep: headerBytes = 16
            case DatasetBuilder.magicBytes: headerBytes = 20
            default: throw DatasetBlobError.corrupt("bad magic")
            }
            guard pending.count >= headerBytes else { return }
            let d = Int(u32(at: 8))
            guard d >= 1 else { throw DatasetBlobError.corrupt("zero features") }
            switch magic {
            case DatasetBuilder.magicPerStep:
                labelsPerExample = Int(u32(at: 12))
                guard labelsPerExample >= 1 else { throw DatasetBlobError.corrupt("zero labels per example") }
                form = .float32(labels: labelsPerExample)
            case DatasetBuilder.magicBytes:
                let scale = Double(bitPattern: UInt64(u32(at: 12)) | UInt64(u32(at: 16)) << 32)
                guard scale.isFinite, scale > 0 else { throw DatasetBlobError.corrupt("bad scale") }
                form = .uint8(table: (0...255).map { Float(Double($0) * scale) })
            default: break
            }
            features = d
            pending.removeFirst(headerBytes)
            values.reserveCapacity(expectedValues)
            labels.reserveCapacity(CheckedSize.product(expectedExamples, labelsPerExample).map { min($0, 1 << 31) } ?? 0)
        }
        let d = features!
        let consumed: Int
        switch form {
        case .float32(let l): consumed = readFloatRows(d: d, l: l)
        case .uint8(let table): consumed = readByteRows(d: d, table: table)
        }
        pending.removeFirst(consumed)
    }

    /// Decodes the whole rows of `pending`; returns the bytes used.
    private mutating func readFloatRows(d: Int, l: Int) -> Int {
        let rowBytes = 4 * (d + l)
        let rows = pending.count / rowBytes
        guard rows > 0 else { return 0 }
        let start = values.count
        values.append(contentsOf: repeatElement(0, count: rows * d))
        pending.withUnsafeBytes { src in
            values.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let base = r * rowBytes
                    for i in 0..<l { labels.append(Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: base + 4 * i, as: Int32.self)))) }
                    let out = dst.baseAddress! + start + r * d
                    #if _endian(little)
                    UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress! + base + 4 * l, byteCount: 4 * d)
                    #else
                    for i in 0..<d { out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: base + 4 * (l + i), as: UInt32.self))) }
                    #endif
                }
            }
        }
        return rows * rowBytes
    }

    private mutating func readByteRows(d: Int, table: [Float]) -> Int {
        let rowBytes = 1 + d
        let rows = pending.count / rowBytes
        guard rows > 0 else { return 0 }
        let start = values.count
        values.append(contentsOf: repeatElement(0, count: rows * d))
        pending.withUnsafeBufferPointer { src in
            table.withUnsafeBufferPointer { t in
                values.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<rows {
                        let row = src.baseAddress! + r * rowBytes
                        labels.append(Int(row[0]))
                        let out = dst.baseAddress! + start + r * d
                        for i in 0..<d { out[i] = t[Int(row[1 + i])] }
                    }
                }
            }
        }
        return rows * rowBytes
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
