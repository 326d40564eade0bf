// OpenAPIDocumentTests: the document compiled into the binary (served at GET /openapi.yaml) is
// exactly openapi.yaml at the repository root (Sources/Service/OpenAPI/openapi.yaml links to it).
import Foundation
import Testing
import Service

@Suite struct OpenAPIDocumentTests {
    /// The repository root: three levels above this file (Tests/ServiceTests/<file>).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func embeddedDocumentMatchesOpenAPIYAML() throws {
        let url = Self.repositoryRoot.appendingPathComponent("openapi.yaml")
        let onDisk = try String(contentsOf: url, encoding: .utf8)
        #expect(OpenAPIDocument.yaml == onDisk,
                "Sources/Service/OpenAPI/openapi.yaml must be a symbolic link to ../../../openapi.yaml")
    }

    @Test func embeddedDocumentLooksLikeOpenAPI31() {
        #expect(OpenAPIDocument.yaml.hasPrefix("openapi: 3.1."))
        #expect(OpenAPIDocument.yaml.contains("\n  /v1/models/{id}/train:\n"))
    }
}
