// Issue 15, the authenticated hot path: the byte-level reading of `Authorization: Bearer <key>`
// gives the same answer as the general one (lowercased prefix, Foundation's trimming, 200
// characters at most) for every value, and over a real socket a scheme in any case, blanks around
// the key, another scheme and an over-long key behave as before.
import Foundation
import Testing
@testable import Service
import TestSupport

@Suite struct AuthHotPathTests {
    /// The reading before the fast path, kept here as the reference.
    static func reference(_ header: String) -> String? {
        guard header.lowercased().hasPrefix("bearer ") else { return nil }
        let secret = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !secret.isEmpty, secret.count <= 200 else { return nil }
        return secret
    }

    @Test func theBytewiseReadingEqualsTheGeneralOne() {
        let key = "pfc_" + String(repeating: "0123456789abcdef", count: 4)
        var values = [
            "Bearer \(key)", "bearer \(key)", "BEARER \(key)", "BeArEr \(key)", "Bearer  \(key)  ", "Bearer\t\(key)\t",
            "Bearer \t \(key) \t", "Bearer", "Bearer ", "Bearer    ", "Bearer\(key)", "Basic \(key)", "Token \(key)", "",
            "Bearer a", "Bearer a b", "Bearer " + String(repeating: "x", count: 200), "Bearer " + String(repeating: "x", count: 201),
            " Bearer \(key)", "Bearer\u{0}\(key)", "bearer@\(key)", "Bearar \(key)", "Bearer \(key)\u{0}", "BEARER  x ",
            // Not ASCII: the general path answers.
            "Bearer é\(key)", "Bearer \u{00A0}\(key)\u{00A0}", "Bearer \u{2003}\(key)", "Bearer " + String(repeating: "é", count: 200),
            "Bearer " + String(repeating: "é", count: 201), "Béarer \(key)", "Bearer 🔑",
        ]
        // Every ASCII byte in each position of a short value.
        for b in 0..<128 {
            let c = String(UnicodeScalar(UInt8(b)))
            values += ["Bearer \(c)x", "Bearer x\(c)", "\(c)earer x", "Bearer\(c)x"]
        }
        for v in values {
            #expect(TenantAuthMiddleware.bearerSecret(v) == Self.reference(v), "\(v.debugDescription)")
        }
    }

    @Test(arguments: Backend.all)
    func theSchemeIsCaseInsensitiveAndBlanksAroundTheKeyAreIgnored(backend: Backend) throws {
        try ServiceHarness.with(backend) { (h: ServiceHarness) throws in
            func status(_ authorization: String) throws -> Int {
                let fd = try h.client.connect()
                defer { close(fd) }
                try h.client.sendAll(fd, Array("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: \(authorization)\r\nConnection: close\r\n\r\n".utf8))
                return try h.client.readResponse(fd).status
            }
            #expect(try status("Bearer \(h.key)") == 200)
            #expect(try status("bEaReR \(h.key)") == 200)
            #expect(try status("Bearer \t \(h.key)\t ") == 200)
            #expect(try status("Basic \(h.key)") == 401)
            #expect(try status("Bearer \(h.key)x") == 401)
            #expect(try status("Bearer " + String(repeating: "a", count: 201)) == 401)
            #expect(try status("Bearer ") == 401)
        }
    }
}
