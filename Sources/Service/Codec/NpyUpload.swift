// NpyUpload: a dataset upload as a NumPy `.npy` file (issue 16's fast binary form): a 2-D C-order array of
// uint8, float32 or float64 whose first column is the label, as in CSV; `?scale=` multiplies the features
// (e.g. `1/255` for raw pixels). Read as it streams, row by row, so memory stays bounded by one chunk.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html (versions 1.0, 2.0, 3.0).
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// The element types accepted, by their `descr`.
enum NpyElement: String {
    case uint8 = "u1", float32 = "f4", float64 = "f8"

    var size: Int { switch self { case .uint8: 1; case .float32: 4; case .float64: 8 } }

    /// `|u1`, `<u1`, `u1`, `<f4`, `<f8` (and `=` on this little-endian machine); big-endian is refused.
    static func parse(_ descr: String) throws -> NpyElement {
        var d = Substring(descr)
        if let first = d.first, "<|=".contains(first) { d = d.dropFirst() } else if d.first == ">" {
            throw APIError.invalid(".npy dtype \(descr) is big-endian; save it little-endian (arr.astype('<f4'))")
        }
        guard let e = NpyElement(rawValue: String(d)) else {
            throw APIError.invalid(".npy dtype \(descr) is not accepted; use uint8, float32 or float64")
        }
        return e
    }
}

/// The parsed `.npy` header.
struct NpyHeader: Equatable {
    var element: NpyElement
    var rows: Int
    var columns: Int
    /// Bytes before the data (magic, version, length, header text).
    var dataOffset: Int

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// The header, once `bytes` hold all of it; nil while more bytes are needed.
    static func parse(_ bytes: [UInt8]) throws -> NpyHeader? {
        guard bytes.count >= 10 else {
            if !bytes.elementsEqual(magic.prefix(bytes.count)) { throw notNpy }
            return nil
        }
        guard Array(bytes[0..<6]) == magic else { throw notNpy }
        let major = bytes[6]
        let (lengthBytes, length): (Int, Int)
        switch major {
        case 1: (lengthBytes, length) = (2, Int(bytes[8]) | Int(bytes[9]) << 8)
        case 2, 3:
            guard bytes.count >= 12 else { return nil }
            (lengthBytes, length) = (4, Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24)
        default: throw APIError.invalid(".npy format version \(major).\(bytes[7]) is not supported (1.0, 2.0 and 3.0 are)")
        }
        guard length <= 1 << 20 else { throw APIError.invalid(".npy header of \(length) bytes is too long (at most 1 MiB)") }
        let offset = 8 + lengthBytes + length
        guard bytes.count >= offset else { return nil }
        guard let text = String(bytes: bytes[(8 + lengthBytes)..<offset], encoding: .utf8) else { throw APIError.invalid(".npy header is not text") }
        return try parse(dictionary: text, dataOffset: offset)
    }

    static let notNpy = APIError.invalid("the body is not a .npy file (it must start with \\x93NUMPY)")

    /// Reads `{'descr': '<f4', 'fortran_order': False, 'shape': (n, c), }`.
    static func parse(dictionary text: String, dataOffset: Int) throws -> NpyHeader {
        func value(of key: String) throws -> Substring {
            guard let k = text.range(of: "'\(key)'"), let colon = text[k.upperBound...].firstIndex(of: ":") else {
                throw APIError.invalid(".npy header has no '\(key)'")
            }
            return text[text.index(after: colon)...].drop { $0 == " " }
        }
        let descrField = try value(of: "descr")
        guard descrField.first == "'", let close = descrField.dropFirst().firstIndex(of: "'") else {
            throw APIError.invalid(".npy header: descr must be a dtype string (structured arrays are not accepted)")
        }
        let element = try NpyElement.parse(String(descrField[descrField.index(after: descrField.startIndex)..<close]))
        let order = try value(of: "fortran_order")
        if order.hasPrefix("True") { throw APIError.invalid(".npy array is in Fortran order; save a C-order array (np.ascontiguousarray)") }
        guard order.hasPrefix("False") else { throw APIError.invalid(".npy header: fortran_order must be True or False") }
        let shapeField = try value(of: "shape")
        guard shapeField.first == "(", let end = shapeField.firstIndex(of: ")") else { throw APIError.invalid(".npy header: shape must be a tuple") }
        let dims = shapeField[shapeField.index(after: shapeField.startIndex)..<end].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard dims.count == 2, let rows = Int(dims[0]), let columns = Int(dims[1]), rows >= 1, columns >= 2 else {
            throw APIError.invalid(".npy array must be 2-D (rows, 1 + features) with at least one row and one feature; its shape is (\(dims.joined(separator: ", ")))")
        }
        return NpyHeader(element: element, rows: rows, columns: columns, dataOffset: dataOffset)
    }
}

extension DatasetUpload {
    /// Most features per row of a `.npy` upload: as many as a 16 MiB CSV or NDJSON line can hold.
    static let maxFeaturesPerRow = 8 << 20

    /// The `scale` query parameter: a positive finite number, or `a/b` (e.g. `1/255`).
    static func scaleQuery(_ request: Request) throws -> Double {
        guard let text = request.queryValue("scale") else { return 1 }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let value: Double?
        switch parts.count {
        case 1: value = Double(parts[0])
        case 2: value = Double(parts[0]).flatMap { a in Double(parts[1]).map { a / $0 } }
        default: value = nil
        }
        guard let value, value.isFinite, value > 0 else {
            throw APIError.badRequest("scale must be a positive number or a fraction such as 1/255, not \(text)", code: "invalid_parameter")
        }
        // A scaled byte is a float32 feature: 255 × scale must stay finite (1e300 would store +inf).
        guard Float(255 * value).isFinite else {
            throw APIError.badRequest("scale \(text) is too large: 255 × scale must fit a 32-bit float (at most about 1.3e36)", code: "invalid_parameter")
        }
        return value
    }

    /// Streams a `.npy` body into the builder. A uint8 array is stored as it is (the compact form,
    /// `DatasetBuilder.Encoding.uint8`, its rows copied in whole chunks); float32 and float64 become
    /// float32 rows. With `contentFile` (SQLite) the rows go straight to the store's content file as
    /// they arrive, no spill file. A Content-Length other than the header's size is refused as soon as
    /// the header is read, before any row.
    static func npy(_ request: Request, limits: ServiceLimits, contentFile: (() throws -> DatasetBlobFile?)? = nil) throws -> DatasetUpload {
        let name = try validName(request.queryValue("name"))
        let form = try SequenceForm.declared(query: request.queryValue)
        let shape = try queryShape(request)
        let scale = try scaleQuery(request)
        var builder = DatasetBuilder(contentFile: contentFile)
        var pending: [UInt8] = []
        var header: NpyHeader?
        var rowBytes = 0, rowsRead = 0
        var row = [Float]()
        func rows(_ p: UnsafeRawBufferPointer, _ h: NpyHeader) throws {
            let count = p.count / rowBytes
            guard count > 0 else { return }
            guard rowsRead + count <= h.rows else {
                throw APIError.invalid(".npy data is longer than its shape (\(h.rows), \(h.columns)) says")
            }
            let d = h.columns - 1
            if h.element == .uint8 {
                try builder.appendByteRows(UnsafeRawBufferPointer(rebasing: p[0..<(count * rowBytes)]), features: d)
                rowsRead += count
                return
            }
            for r in 0..<count {
                let base = p.baseAddress! + r * rowBytes
                let label: Double
                switch h.element {
                case .uint8:
                    preconditionFailure("uint8 rows are copied whole")
                case .float32:
                    label = Double(base.loadUnaligned(as: Float.self))
                    row.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + 4, count: 4 * d)) }
                    if scale != 1 { let s = Float(scale); for i in 0..<d { row[i] *= s } }
                case .float64:
                    label = base.loadUnaligned(as: Double.self)
                    row.withUnsafeMutableBufferPointer { out in
                        for i in 0..<d { out[i] = Float(base.loadUnaligned(fromByteOffset: 8 * (i + 1), as: Double.self) * scale) }
                    }
                }
                rowsRead += 1
                let labelValue = try integerLabel(label, row: rowsRead)
                try row.withUnsafeBufferPointer { try builder.appendRow(label: labelValue, features: $0, row: rowsRead) }
            }
        }
        try forEachChunk(of: request.body, maxBytes: limits.maxStreamedDatasetBytes) { chunk in
            var data = chunk[...]
            if header == nil {
                pending.append(contentsOf: chunk)
                guard let h = try NpyHeader.parse(pending) else { return }
                guard let bytes = CheckedSize.product(h.rows, h.columns, h.element.size), bytes <= limits.maxStreamedDatasetBytes else {
                    throw HTTPError(.contentTooLarge, message: ".npy array of shape (\(h.rows), \(h.columns)) is over the \(limits.maxStreamedDatasetBytes)-byte upload limit")
                }
                if case .length(let length) = request.head.framing, length != h.dataOffset + bytes {
                    let needs = "shape (\(h.rows), \(h.columns)) of \(h.element.size)-byte values after a \(h.dataOffset)-byte header is \(h.dataOffset + bytes) bytes, the Content-Length \(length)"
                    throw APIError.invalid(length < h.dataOffset + bytes ? ".npy data is truncated: its \(needs)" : ".npy data is longer than its shape says: its \(needs)")
                }
                // The row buffer is sized by the header alone: bound it before any data arrives.
                guard h.columns - 1 <= maxFeaturesPerRow else {
                    throw APIError.invalid(".npy array of shape (\(h.rows), \(h.columns)) has \(h.columns - 1) features per row; at most \(maxFeaturesPerRow) are accepted")
                }
                header = h
                rowBytes = h.columns * h.element.size
                if h.element != .uint8 { row = [Float](repeating: 0, count: h.columns - 1) } // uint8 rows are copied whole
                if h.element == .uint8 { builder = DatasetBuilder(encoding: .uint8(scale: scale), contentFile: contentFile) }
                data = pending[h.dataOffset...]
                pending = []
            }
            let h = header!
            if !pending.isEmpty {
                let need = rowBytes - pending.count
                pending.append(contentsOf: data.prefix(need))
                data = data.dropFirst(need)
                guard pending.count == rowBytes else { return }
                try pending.withUnsafeBytes { try rows($0, h) }
                pending.removeAll(keepingCapacity: true)
            }
            let whole = data.count / rowBytes * rowBytes
            try data.withUnsafeBytes { try rows(UnsafeRawBufferPointer(rebasing: $0[0..<whole]), h) }
            pending.append(contentsOf: data.dropFirst(whole))
        }
        guard let h = header else { throw APIError.invalid("the .npy body ends inside its header") }
        guard rowsRead == h.rows, pending.isEmpty else {
            throw APIError.invalid(".npy data is truncated: \(rowsRead) of \(h.rows) rows, then \(pending.count) stray bytes")
        }
        try checkForm(form, features: builder.features)
        return DatasetUpload(name: name, imageShape: try validShape(shape, features: builder.features), sequence: form, builder: builder)
    }
}
