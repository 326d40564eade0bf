// ModelLoader: a model's stored architecture and a version's network (through the model cache).
import Foundation
import HTTP
import PFC
import Storage

/// Reads models for the routes that serve them.
struct ModelLoader: Sendable {
    let store: any Store
    let cache: ModelCache

    /// The architecture and seed stored with a model (500 when unreadable).
    func spec(of m: Model) throws -> ModelSpec {
        do { return try JSONDecoder().decode(ModelSpec.self, from: Data(m.architecture.utf8)) } catch {
            throw HTTPError(.internalServerError, message: "model \(m.id) has an unreadable architecture")
        }
    }

    /// The network of a model version (latest when nil), through the cache.
    func network(modelID: String, tenantID: String, version: Int?) throws -> (Int, any Network) {
        let v = try storeCall {
            try version.map { try store.modelVersion(modelID: modelID, version: $0, tenantID: tenantID).version }
                ?? store.latestModelVersion(modelID: modelID, tenantID: tenantID).version
        }
        let network = try cache.network(modelID: modelID, version: v) {
            let bytes = try storeCall { try store.modelWeights(modelID: modelID, version: v, tenantID: tenantID) }
            do { return try ModelFile.decode(Array(bytes)) } catch {
                throw HTTPError(.internalServerError, message: "stored weights of model \(modelID) v\(v) are unreadable: \(error)")
            }
        }
        return (v, network)
    }
}
