// Small shared pieces: the clock, ids, SHA-256, ISO 8601.
import COpenSSL
import Foundation

/// The store's notion of time: wall-clock time truncated to microseconds, the precision both
/// databases keep, so a record read back equals the record written.
public enum StoreClock {
    /// Now, at microsecond precision.
    public static func now() -> Date { dateFromMicroseconds(microsecondsSince1970(Date())) }
}

/// New record ids: lowercase UUID strings made in Swift.
public enum StoreID {
    /// A fresh random id.
    public static func make() -> String { UUID().uuidString.lowercased() }
}

/// SHA-256 through OpenSSL's EVP interface, as lowercase hex.
struct SHA256Hex {
    private var context: OpaquePointer?

    /// Starts an incremental digest.
    init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    /// Adds bytes to the digest.
    mutating func update(_ data: Data) {
        data.withUnsafeBytes { bytes in _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) }
    }

    /// Adds bytes to the digest.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    /// Finishes and returns the hex digest; the value must not be used afterwards.
    mutating func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        EVP_MD_CTX_free(context)
        context = nil
        // Lowercase hex by hand: `String(format:)` per byte was 15 % of an authenticated request's time.
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(Int(length) * 2)
        for b in digest.prefix(Int(length)) { out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The hex SHA-256 of `data` in one call.
    static func digest(_ data: Data) -> String {
        var hasher = SHA256Hex()
        hasher.update(data)
        return hasher.finalize()
    }
}

/// Random bytes from OpenSSL's CSPRNG, as lowercase hex.
func randomHex(byteCount: Int) -> String {
    var bytes = [UInt8](repeating: 0, count: byteCount)
    precondition(RAND_bytes(&bytes, Int32(byteCount)) == 1, "OpenSSL RAND_bytes failed")
    return bytes.map { String(format: "%02x", $0) }.joined()
}

enum ISO8601 {
    static func string(_ date: Date) -> String { Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date) }
}
