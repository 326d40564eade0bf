// Small shared pieces: the clock, ids, SHA-256, ISO 8601.
import COpenSSL
import Foundation

/// The store's notion of time: wall-clock time truncated to microseconds, the precision both
/// databases keep, so a record read back equals the record written.
public enum StoreClock {
    /// Seconds added to this process's clock where it is bound (`$skewForTesting.withValue`): a
    /// test's replica whose clock runs ahead or behind.
    @TaskLocal public static var skewForTesting: TimeInterval = 0

    /// Now, at microsecond precision.
    public static func now() -> Date { dateFromMicroseconds(microsecondsSince1970(Date().addingTimeInterval(skewForTesting))) }
}

/// New record ids: lowercase UUID strings made in Swift.
public enum StoreID {
    /// A fresh random id.
    public static func make() -> String { UUID().uuidString.lowercased() }
}

/// SHA-256 through OpenSSL's EVP interface, as lowercase hex.
struct SHA256Hex {
    private var context: OpaquePointer?

    /// SHA-256 fetched from the default provider once. `EVP_sha256()` makes every digest fetch it
    /// again (a locked look-up in OpenSSL's global store), which showed on the authenticated path.
    /// An `EVP_MD` is immutable once fetched and may be shared by threads (OpenSSL 3 docs).
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256()

    /// Starts an incremental digest.
    init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, Self.algorithm, nil)
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
        defer { EVP_MD_CTX_free(context); context = nil }
        return Self.hexDigest { digest, length in EVP_DigestFinal_ex(context, digest, length) }
    }

    /// The hex SHA-256 of `data` in one call.
    static func digest(_ data: Data) -> String {
        data.withUnsafeBytes { digest($0) }
    }

    /// The hex SHA-256 of the UTF-8 bytes of `text` in one call (an API key on every request).
    static func digest(_ text: String) -> String {
        var text = text
        return text.withUTF8 { digest(UnsafeRawBufferPointer($0)) }
    }

    /// The hex SHA-256 of `bytes` in one call: no digest context of its own to allocate and free.
    static func digest(_ bytes: UnsafeRawBufferPointer) -> String {
        hexDigest { digest, length in EVP_Digest(bytes.baseAddress, bytes.count, digest, length, algorithm, nil) }
    }

    /// Runs `produce` into a stack buffer and returns its bytes as lowercase hex ("" if it fails), made by hand:
    /// `String(format:)` per byte was 15 % of an authenticated request's time.
    private static func hexDigest(_ produce: (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt32>) -> Int32) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Int(EVP_MAX_MD_SIZE)) { digest in
            var length: UInt32 = 0
            // OpenSSL fails here only when out of memory; "" then matches no stored digest.
            guard produce(digest.baseAddress!, &length) == 1 else { return "" }
            let count = Int(length)
            return String(unsafeUninitializedCapacity: 2 * count) { out in
                let hex: StaticString = "0123456789abcdef"
                let digits = hex.utf8Start
                for i in 0..<count {
                    out[2 * i] = digits[Int(digest[i] >> 4)]
                    out[2 * i + 1] = digits[Int(digest[i] & 0xF)]
                }
                return 2 * count
            }
        }
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
