// PGBinary and PGParameter: PostgreSQL's binary wire format for the types the schema uses.
import Foundation

/// Type OIDs (pg_type.dat).
enum PGType {
    static let bool: UInt32 = 16, bytea: UInt32 = 17, name: UInt32 = 19, int8: UInt32 = 20
    static let int2: UInt32 = 21, int4: UInt32 = 23, text: UInt32 = 25, oid: UInt32 = 26
    static let json: UInt32 = 114, float4: UInt32 = 700, float8: UInt32 = 701
    static let bpchar: UInt32 = 1042, varchar: UInt32 = 1043
    static let timestamp: UInt32 = 1114, timestamptz: UInt32 = 1184, uuid: UInt32 = 2950, jsonb: UInt32 = 3802
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
let postgresEpochOffsetMicros: Int64 = 946_684_800_000_000

/// One parameter encoded for `PQexecParams`: owns its bytes until `deallocate()`.
struct PGParameter {
    let oid: UInt32
    let bytes: UnsafeMutableRawPointer?
    let length: Int32
    let format: Int32

    /// Throws `invalidArgument` for a value longer than a wire length can say (2 GiB; PostgreSQL
    /// itself refuses fields over 1 GB): a checkpoint or blob that large fails its write instead of
    /// trapping in the `Int32` length. Checked for every parameter before any is encoded.
    static func checkLength(_ value: SQLValue) throws {
        let bytes: Int
        switch value {
        case .text(let text): bytes = text.utf8.count + 1
        case .blob(let data): bytes = data.count
        default: return
        }
        guard bytes <= Int(Int32.max) else {
            throw StoreError.invalidArgument("a value of \(bytes) bytes is too large for one PostgreSQL field")
        }
    }

    /// The value's wire form (`checkLength` first).
    init(_ value: SQLValue) {
        switch value {
        case .null:
            self.init(oid: 0, bytes: nil, length: 0, format: 0)
        case .integer(let number):
            self.init(oid: PGType.int8, bigEndian: UInt64(bitPattern: number))
        case .double(let number):
            self.init(oid: PGType.float8, bigEndian: number.bitPattern)
        case .timestamp(let date):
            self.init(oid: PGType.timestamptz, bigEndian: UInt64(bitPattern: microsecondsSince1970(date) - postgresEpochOffsetMicros))
        case .bool(let flag):
            self.init(oid: PGType.bool, copying: [flag ? 1 : 0], format: 1)
        case .text(let text):
            self.init(oid: PGType.text, copying: Array(text.utf8) + [0], format: 0)
        case .blob(let data):
            self.init(oid: PGType.bytea, copying: data, format: 1)
        }
    }

    private init(oid: UInt32, bigEndian value: UInt64) {
        self.init(oid: oid, copying: withUnsafeBytes(of: value.bigEndian) { Data($0) }, format: 1)
    }

    private init<Bytes: Collection>(oid: UInt32, copying source: Bytes, format: Int32) where Bytes.Element == UInt8 {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(source.count, 1), alignment: 8)
        UnsafeMutableRawBufferPointer(start: pointer, count: source.count).copyBytes(from: source)
        self.init(oid: oid, bytes: pointer, length: Int32(source.count), format: format)
    }

    private init(oid: UInt32, bytes: UnsafeMutableRawPointer?, length: Int32, format: Int32) {
        self.oid = oid
        self.bytes = bytes
        self.length = length
        self.format = format
    }

    func deallocate() { bytes?.deallocate() }
}

/// Decodes one binary-format result value by its column type.
enum PGBinary {
    static func decode(_ bytes: UnsafeRawBufferPointer, oid: UInt32, column: String) throws -> SQLValue {
        switch oid {
        case PGType.bool: return .bool(bytes.first.map { $0 != 0 } ?? false)
        case PGType.bytea: return .blob(Data(bytes))
        case PGType.int8: return .integer(Int64(bitPattern: try bigEndian(bytes, 8, column)))
        case PGType.int4: return .integer(Int64(Int32(bitPattern: UInt32(try bigEndian(bytes, 4, column)))))
        case PGType.int2: return .integer(Int64(Int16(bitPattern: UInt16(try bigEndian(bytes, 2, column)))))
        case PGType.oid: return .integer(Int64(try bigEndian(bytes, 4, column)))
        case PGType.float8: return .double(Double(bitPattern: try bigEndian(bytes, 8, column)))
        case PGType.float4: return .double(Double(Float(bitPattern: UInt32(try bigEndian(bytes, 4, column)))))
        case PGType.text, PGType.varchar, PGType.bpchar, PGType.name, PGType.json:
            return .text(String(decoding: bytes, as: UTF8.self))
        case PGType.jsonb:
            return .text(String(decoding: bytes.dropFirst(), as: UTF8.self))  // version byte, then text
        case PGType.timestamp, PGType.timestamptz:
            let micros = Int64(bitPattern: try bigEndian(bytes, 8, column))
            return .timestamp(dateFromMicroseconds(micros + postgresEpochOffsetMicros))
        case PGType.uuid:
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            let parts = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
                String(hex[hex.index(hex.startIndex, offsetBy: range.lowerBound)..<hex.index(hex.startIndex, offsetBy: range.upperBound)])
            }
            return .text(parts.joined(separator: "-"))
        default:
            throw StoreError.decoding(column: column, message: "unsupported PostgreSQL type oid \(oid); cast it in SQL")
        }
    }

    private static func bigEndian(_ bytes: UnsafeRawBufferPointer, _ width: Int, _ column: String) throws -> UInt64 {
        guard bytes.count == width else {
            throw StoreError.decoding(column: column, message: "expected \(width) bytes, got \(bytes.count)")
        }
        return bytes.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
    }
}
