// ModelBodyCache: the encoded `GET /v1/models/{id}` body of each model, reused while the row it
// was made from is unchanged, so a read of an unchanged model costs no JSON decoding (of the stored
// architecture) and no JSON encoding (of the response).

import Storage
import Synchronization

/// Model id → (the model row and latest version the body was encoded from, the body). An entry is
/// used only when the row just read from the database (every column: tenant, name, kind,
/// architecture, created_at) and the latest version number equal the ones it was made from, so it
/// is never stale: the database is still read on every request, and a rename, an architecture
/// change, a new version or a deletion through any replica (or straight in the database) shows at
/// once. The body is the one `JSONCoding.apiEncoder` wrote for that row, byte for byte.
/// Bounded in entries; thread-safe (one lock around a dictionary look-up, encoding outside it).
final class ModelBodyCache: Sendable {
    /// What a body was encoded from.
    struct Source: Equatable, Sendable {
        var model: Model
        var latestVersion: Int
    }

    private struct State {
        var entries: [String: (source: Source, body: [UInt8])] = [:]
        var hits = 0
        var misses = 0
    }

    /// Most models kept.
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        precondition(capacity >= 1, "ModelBodyCache needs capacity ≥ 1")
        self.capacity = capacity
    }

    /// The body for `source`: the cached one when it was made from exactly this row and version,
    /// else `encode()`'s, which is then kept (replacing the model's older body).
    func body(for source: Source, encode: (Source) throws -> [UInt8]) throws -> [UInt8] {
        let id = source.model.id
        let cached: [UInt8]? = state.withLock { s in
            if let entry = s.entries[id], entry.source == source {
                s.hits += 1
                return entry.body
            }
            s.misses += 1
            return nil
        }
        if let cached { return cached }
        let body = try encode(source)
        state.withLock { s in
            if s.entries[id] == nil && s.entries.count >= capacity {
                // Arbitrary entries down to three quarters: a sweep at most once per capacity/4 insertions.
                let keep = capacity - max(1, capacity / 4)
                while s.entries.count > keep { s.entries.remove(at: s.entries.startIndex) }
            }
            s.entries[id] = (source, body)
        }
        return body
    }

    /// Drops a model's body (it was deleted); only saves memory, as a stale entry is never served.
    func evict(modelID: String) { _ = state.withLock { $0.entries.removeValue(forKey: modelID) } }

    /// Bodies held now.
    var count: Int { state.withLock { $0.entries.count } }

    /// Bodies served from the table, and bodies encoded.
    var hitsAndMisses: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }
}
