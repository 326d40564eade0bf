import Foundation
import Testing
@testable import Storage

@Suite struct SupportTests {
    @Test func sha256OfKnownInput() {
        #expect(SHA256Hex.digest(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func idsAreLowercaseUUIDs() {
        let id = StoreID.make()
        #expect(UUID(uuidString: id) != nil && id == id.lowercased())
    }
}
