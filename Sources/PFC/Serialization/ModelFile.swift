// ModelFile: the versioned binary format of a trained network.
//
// Layout (all integers little-endian):
//   magic "PFCMODEL" (8 bytes) | format version u32 | architecture JSON length u32 | JSON (UTF-8)
//   | parameter count u32 | per parameter: name length u16, name, rows u32, cols u32,
//     non-negative u8, rows·cols Float32 (IEEE 754, little-endian)
//   | CRC-32 of every preceding byte, u32
import Foundation
import Linalg

/// Why a model file cannot be loaded.
public enum ModelFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Not a pfc-server model file (wrong magic).
    case notAModelFile
    /// Written by a newer format version.
    case unsupportedVersion(UInt32)
    /// The file ends early.
    case truncated
    /// The checksum does not match: the bytes were altered.
    case checksumMismatch
    /// Header or contents inconsistent with the architecture.
    case incompatible(String)

    public var description: String {
        switch self {
        case .notAModelFile: return "not a pfc-server model file (bad magic bytes)"
        case .unsupportedVersion(let v): return "model format version \(v) is not supported (this build reads version \(ModelFile.formatVersion))"
        case .truncated: return "the model file is truncated"
        case .checksumMismatch: return "the model file is corrupt (checksum mismatch)"
        case .incompatible(let why): return "the model file is inconsistent: \(why)"
        }
    }
}

/// Encodes and decodes networks.
public enum ModelFile {
    /// The magic bytes at the start of every file.
    public static let magic = Array("PFCMODEL".utf8)
    /// The format version this build writes and reads.
    public static let formatVersion: UInt32 = 1
    /// The longest architecture JSON a model file may hold (a real one is a few hundred bytes).
    public static let maxArchitectureJSONBytes = 64 << 10

    /// The bytes of `network`'s file.
    public static func encode(_ network: any Network) -> [UInt8] {
        encode(architecture: network.architecture, parameters: network.parameters)
    }

    /// The bytes of a file holding `parameters` of `architecture`.
    public static func encode(architecture: Architecture, parameters: [Parameter]) -> [UInt8] {
        var out = magic
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        u32(formatVersion)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array((try? encoder.encode(architecture)) ?? Data())
        u32(UInt32(json.count))
        out.append(contentsOf: json)
        u32(UInt32(parameters.count))
        for p in parameters {
            let name = Array(p.name.utf8)
            u16(UInt16(name.count))
            out.append(contentsOf: name)
            u32(UInt32(p.value.rows))
            u32(UInt32(p.value.cols))
            out.append(p.nonnegative ? 1 : 0)
            out.reserveCapacity(out.count + p.value.count * 4 + 4)
            for v in p.value.storage { u32(v.bitPattern) }
        }
        u32(CRC32.checksum(out))
        return out
    }

    /// Decodes a network, verifying magic, version, lengths and checksum.
    public static func decode(_ bytes: [UInt8]) throws -> any Network {
        let (arch, params) = try decodeParts(bytes)
        return try NetworkFactory.make(arch, parameters: params)
    }

    /// Decodes the architecture and raw parameters. A file that ends early is `.truncated`; any
    /// other altered byte is `.checksumMismatch` (or `.notAModelFile` in the magic).
    public static func decodeParts(_ bytes: [UInt8]) throws -> (Architecture, [Parameter]) {
        guard bytes.count >= magic.count else {
            throw bytes.elementsEqual(magic.prefix(bytes.count)) ? ModelFileError.truncated : .notAModelFile
        }
        guard Array(bytes[0..<magic.count]) == magic else { throw ModelFileError.notAModelFile }
        guard bytes.count >= magic.count + 8 else { throw ModelFileError.truncated }
        let bodyEnd = bytes.count - 4
        var tail = Reader(bytes: bytes, end: bytes.count, offset: bodyEnd)
        let checksumOK = CRC32.checksum(bytes[0..<bodyEnd]) == (try tail.u32())
        do {
            let parts = try parseBody(bytes, end: bodyEnd)
            guard checksumOK else { throw ModelFileError.checksumMismatch }
            return parts
        } catch ModelFileError.truncated {
            throw ModelFileError.truncated
        } catch {
            throw checksumOK ? error : ModelFileError.checksumMismatch
        }
    }

    static func parseBody(_ bytes: [UInt8], end: Int) throws -> (Architecture, [Parameter]) {
        var r = Reader(bytes: bytes, end: end, offset: magic.count)
        let version = try r.u32()
        guard version == formatVersion else { throw ModelFileError.unsupportedVersion(version) }
        // A real architecture is a few hundred bytes; the JSON parser holds words per number, so an
        // unbounded one let a 95 MB field cost a gigabyte before the checksum was even compared.
        let jsonLength = Int(try r.u32())
        guard jsonLength <= maxArchitectureJSONBytes else {
            throw ModelFileError.incompatible("architecture JSON of \(jsonLength) bytes (at most \(maxArchitectureJSONBytes))")
        }
        let json = try r.take(jsonLength)
        let arch: Architecture
        do { arch = try JSONDecoder().decode(Architecture.self, from: Data(json)) } catch {
            throw ModelFileError.incompatible("architecture JSON: \(error)")
        }
        let count = Int(try r.u32())
        guard count <= 64 else { throw ModelFileError.incompatible("\(count) parameter matrices") }
        var params = [Parameter]()
        for _ in 0..<count {
            let nameLength = Int(try r.u16())
            guard let name = String(bytes: try r.take(nameLength), encoding: .utf8) else {
                throw ModelFileError.incompatible("parameter name is not UTF-8")
            }
            let rows = Int(try r.u32()), cols = Int(try r.u32())
            let nonneg = try r.take(1).first! != 0
            let (n, overflow) = rows.multipliedReportingOverflow(by: cols)
            guard !overflow, n <= (end - r.offset) / 4 else { throw ModelFileError.truncated }
            var values = [Float](repeating: 0, count: n)
            #if _endian(little)
            // One copy of the little-endian block (a per-value read took seconds for a 20 M-weight model).
            let block = try r.take(4 * n)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[block.startIndex..<block.endIndex])) }
            }
            #else
            for i in 0..<n { values[i] = Float(bitPattern: try r.u32()) }
            #endif
            params.append(Parameter(name: name, value: Matrix(rows: rows, cols: cols, storage: values), nonnegative: nonneg))
        }
        guard r.offset == end else { throw ModelFileError.incompatible("\(end - r.offset) unexpected trailing bytes") }
        return (arch, params)
    }

    /// Writes `network` to `path` atomically (temporary file, then rename).
    public static func write(_ network: any Network, to path: String) throws {
        try Data(encode(network)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Reads a network from `path`.
    public static func read(path: String) throws -> any Network {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        return try decode(Array(data))
    }

    struct Reader {
        let bytes: [UInt8]
        let end: Int
        var offset: Int
        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, offset + n <= end else { throw ModelFileError.truncated }
            defer { offset += n }
            return bytes[offset..<(offset + n)]
        }
        mutating func u32() throws -> UInt32 {
            let s = try take(4)
            return s.reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u16() throws -> UInt16 {
            let s = try take(2)
            return UInt16(s[s.startIndex]) | UInt16(s[s.startIndex + 1]) << 8
        }
    }
}
