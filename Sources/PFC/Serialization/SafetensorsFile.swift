// SafetensorsFile: a network's weights as a safetensors file (https://github.com/huggingface/safetensors),
// so they open in PyTorch, NumPy or JAX; the architecture JSON rides in the header's metadata.
//
// Layout: header length N (u64, little-endian) | N bytes of JSON, padded with spaces to a multiple of 8 |
// the tensors' bytes. The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets into the byte buffer after the header) and "__metadata__" to string → string pairs.
// We write one F32 tensor per parameter (row-major, rows × cols, as `Matrix` stores it) and the metadata
// keys `format` ("pfc-server"), `architecture` (the same JSON as the .pfc file), `parameters` (the
// parameter names in network order) and `nonnegative` (the names clipped to ≥ 1e-5, comma-separated).
import Foundation
import Linalg

/// Encodes and decodes safetensors files of networks.
public enum SafetensorsFile {
    /// The metadata value of `format` in files this build writes.
    public static let formatName = "pfc-server"
    /// Headers longer than this are refused (the safetensors library's own limit is 100 MB).
    public static let maxHeaderBytes = 16 << 20
    /// At most this many tensors (a network has a handful).
    public static let maxTensors = 64

    /// The safetensors bytes of `network`.
    public static func encode(_ network: any Network) -> [UInt8] {
        encode(architecture: network.architecture, parameters: network.parameters)
    }

    /// The safetensors bytes of `parameters` of `architecture`.
    public static func encode(architecture: Architecture, parameters: [Parameter]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let archJSON = String(decoding: (try? encoder.encode(architecture)) ?? Data(), as: UTF8.self)
        var header: [String: Any] = [
            "__metadata__": [
                "format": formatName,
                "architecture": archJSON,
                "parameters": parameters.map(\.name).joined(separator: ","),
                "nonnegative": parameters.filter(\.nonnegative).map(\.name).joined(separator: ","),
            ],
        ]
        var offset = 0
        for p in parameters {
            let bytes = p.value.count * 4
            header[p.name] = ["dtype": "F32", "shape": [p.value.rows, p.value.cols], "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = Array((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8))
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for p in parameters {
            #if _endian(little)
            p.value.storage.withUnsafeBytes { out.append(contentsOf: $0) }
            #else
            for v in p.value.storage { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            #endif
        }
        return out
    }

    /// True when `bytes` look like a safetensors file (a plausible header length, then `{`).
    public static func looksLikeSafetensors(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 9 else { return false }
        let n = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return n >= 2 && n <= UInt64(bytes.count - 8) && bytes[8] == UInt8(ascii: "{")
    }

    /// Decodes a network, checking the header, every tensor's dtype, shape and offsets, and the
    /// architecture against the weights (`NetworkFactory.make`). Errors say what is wrong.
    public static func decode(_ bytes: [UInt8]) throws -> any Network {
        let (arch, params) = try decodeParts(bytes)
        return try NetworkFactory.make(arch, parameters: params)
    }

    /// The architecture and parameters of a safetensors file, in network order.
    public static func decodeParts(_ bytes: [UInt8]) throws -> (Architecture, [Parameter]) {
        guard bytes.count >= 8 else { throw ModelFileError.truncated }
        let declared = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard declared <= UInt64(maxHeaderBytes) else {
            throw ModelFileError.incompatible("safetensors header of \(declared) bytes (at most \(maxHeaderBytes))")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else { throw ModelFileError.truncated }
        let headerBytes = Data(bytes[8..<(8 + headerLength)])
        let header: [String: HeaderValue]
        do { header = try JSONDecoder().decode([String: HeaderValue].self, from: headerBytes) } catch {
            throw ModelFileError.incompatible("the safetensors header is not a JSON object of tensors (dtype, shape, data_offsets) and __metadata__ (strings)")
        }
        guard case .metadata(let metadata)? = header["__metadata__"] else {
            throw ModelFileError.incompatible("the safetensors metadata (__metadata__, string values) is missing")
        }
        guard let archText = metadata["architecture"] else {
            throw ModelFileError.incompatible("the safetensors metadata has no architecture (files written by pfc-server carry it)")
        }
        let arch: Architecture
        do { arch = try JSONDecoder().decode(Architecture.self, from: Data(archText.utf8)) } catch {
            throw ModelFileError.incompatible("architecture JSON in the metadata: \(error)")
        }
        let bufferStart = 8 + headerLength, bufferLength = bytes.count - bufferStart
        let entries = header.filter { $0.key != "__metadata__" }
        guard entries.count <= maxTensors else { throw ModelFileError.incompatible("\(entries.count) tensors (at most \(maxTensors))") }
        var tensors: [(name: String, rows: Int, cols: Int, begin: Int, end: Int)] = []
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard case .tensor(let info) = value else { throw ModelFileError.incompatible("tensor \(name): not a tensor entry") }
            guard info.dtype == "F32" else { throw ModelFileError.incompatible("tensor \(name) is \(info.dtype); only F32 is accepted") }
            let shape = info.shape
            guard shape.count == 2 || shape.count == 1, shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelFileError.incompatible("tensor \(name): shape must be one or two non-negative integers")
            }
            let rows = shape[0], cols = shape.count == 2 ? shape[1] : 1
            let offsets = info.dataOffsets
            guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bufferLength else {
                throw ModelFileError.incompatible("tensor \(name): data_offsets must be [begin, end] within the \(bufferLength) data bytes")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard let count = CheckedSize.product(rows, cols), let size = CheckedSize.product(count, 4), size == end - begin else {
                throw ModelFileError.incompatible("tensor \(name): shape \(rows)×\(cols) does not match its \(end - begin) data bytes")
            }
            tensors.append((name, rows, cols, begin, end))
        }
        // As the safetensors format requires: the tensors tile the buffer, no gaps and no overlaps.
        var cursor = 0
        for t in tensors.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard t.begin == cursor else { throw ModelFileError.incompatible("tensor \(t.name) starts at \(t.begin), not \(cursor): the data has a gap or overlap") }
            cursor = t.end
        }
        guard cursor == bufferLength else { throw ModelFileError.incompatible("\(bufferLength - cursor) data bytes belong to no tensor") }
        let order = metadata["parameters"].map { $0.split(separator: ",").map(String.init) }
            ?? tensors.sorted { $0.begin < $1.begin }.map(\.name)
        guard Set(order) == Set(tensors.map(\.name)), order.count == tensors.count else {
            throw ModelFileError.incompatible("the metadata's parameters (\(order.joined(separator: ","))) do not name the file's tensors (\(tensors.map(\.name).sorted().joined(separator: ",")))")
        }
        let nonnegative = Set((metadata["nonnegative"] ?? "").split(separator: ",").map(String.init))
        // The architecture must account for exactly these weights before anything it names is allocated.
        let present = tensors.reduce(0) { $0 + ($1.end - $1.begin) / 4 }
        guard let needed = arch.parameterCount, needed == present else {
            throw ModelFileError.incompatible("the architecture needs \(arch.parameterCount.map { "\($0)" } ?? "too many") weights; the file holds \(present)")
        }
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        let params: [Parameter] = order.map { name in
            let t = byName[name]!
            var values = [Float](repeating: 0, count: t.rows * t.cols)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(bufferStart + t.begin)..<(bufferStart + t.end)]))
                }
            }
            #if !_endian(little)
            for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
            #endif
            return Parameter(name: name, value: Matrix(rows: t.rows, cols: t.cols, storage: values), nonnegative: nonnegative.contains(name))
        }
        return (arch, params)
    }

    /// One entry of the header: a tensor, or the metadata.
    enum HeaderValue: Decodable {
        case tensor(TensorInfo)
        case metadata([String: String])

        init(from decoder: any Decoder) throws {
            if let t = try? TensorInfo(from: decoder) { self = .tensor(t) } else { self = .metadata(try [String: String](from: decoder)) }
        }
    }

    struct TensorInfo: Decodable {
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int]
        enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
    }
}
