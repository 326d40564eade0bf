// ModelCache: a bounded cache of decoded model versions for predictions.
import Foundation
import PFC
import Synchronization

/// Keeps up to `capacity` decoded networks with their inference constants, least recently used evicted first. Versions are
/// immutable, so a cached (model, version) never goes stale; deleting a model evicts it.
final class ModelCache: Sendable {
    private struct Entry { var network: any Network; var used: UInt64 }
    private let state = Mutex<(entries: [String: Entry], clock: UInt64)>(([:], 0))
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// The cached network, or the one `load` returns (then cached).
    func network(modelID: String, version: Int, load: () throws -> any Network) rethrows -> any Network {
        let key = "\(modelID)#\(version)"
        if let hit = state.withLock({ s -> (any Network)? in
            s.clock += 1
            s.entries[key]?.used = s.clock
            return s.entries[key]?.network
        }) { return hit }
        let loaded = try load()
        // The inference constants (Gram matrices, η = 1/λmax) are formed once here and kept with the
        // cached network: versions are immutable, so they hold for every later prediction.
        loaded.prepareInference()
        state.withLock { s in
            s.clock += 1
            s.entries[key] = Entry(network: loaded, used: s.clock)
            while s.entries.count > capacity, let oldest = s.entries.min(by: { $0.value.used < $1.value.used })?.key {
                s.entries[oldest] = nil
            }
        }
        return loaded
    }

    /// Drops every cached version of a model.
    func evict(modelID: String) {
        state.withLock { s in s.entries = s.entries.filter { !$0.key.hasPrefix("\(modelID)#") } }
    }

    /// Number of cached networks.
    var count: Int { state.withLock { $0.entries.count } }
}
