// OpenAPIDocument: the contract, served at GET /openapi.yaml. `openapi.yaml` beside this file is a
// symbolic link to the one at the repository root (SwiftPM takes resources only from inside a target);
// `.embedInCode` compiles its bytes into the binary, so the Docker image needs no copy of it.

/// The OpenAPI document served at GET /openapi.yaml.
package enum OpenAPIDocument {
    /// `openapi.yaml` as it was when the binary was built.
    package static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
}
