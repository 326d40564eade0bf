// SHA-256 (API-key hashes, dataset checksums, migration checksums) against the FIPS 180-2 vectors.
import Foundation
@testable import Storage
import Testing

@Suite struct DigestTests {
    static let vectors: [(String, String)] = [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ]

    /// The one-shot forms (String, Data) and the incremental one, fed in uneven pieces, give the
    /// published digests.
    @Test(arguments: vectors) func everyFormGivesThePublishedDigest(text: String, expected: String) {
        #expect(SHA256Hex.digest(text) == expected)
        #expect(SHA256Hex.digest(Data(text.utf8)) == expected)
        #expect(APIKey.hash(text) == expected)
        var incremental = SHA256Hex()
        let bytes = Array(text.utf8)
        var start = 0
        for size in [1, 7, 3, 100] where start < bytes.count {
            let end = min(bytes.count, start + size)
            bytes[start..<end].withUnsafeBytes { incremental.update($0) }
            start = end
        }
        #expect(incremental.finalize() == expected)
    }
}
