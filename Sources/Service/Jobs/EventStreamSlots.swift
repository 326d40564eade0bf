// EventStreamSlots: how many job event streams may be open, per tenant and in all
// (`ServiceLimits.maxEventStreamsPerTenant` / `maxEventStreams`, 256 / 1024 by default). A stream
// holds no thread (a push stream fed by the JobEventHub); the caps bound what one tenant may take
// of the connections, the hub's subscriber table and the per-stream buffers (256 KiB each at most).
import Foundation
import HTTP
import Synchronization

final class EventStreamSlots: Sendable {
    private let perTenant: Int, total: Int
    private let open = Mutex<(byTenant: [String: Int], all: Int)>(([:], 0))
    /// Streams refused since start, by reason ("tenant", "server"), for /metrics.
    let refused = Mutex<[String: Int]>([:])

    init(perTenant: Int, total: Int) {
        self.perTenant = perTenant
        self.total = total
    }

    /// A slot for one stream of `tenantID`, released when the returned value is deallocated (so a
    /// stream that never starts releases it too); 429 or 503 naming the limit when none is free.
    func acquire(tenantID: String) throws -> Slot {
        let refusal = open.withLock { s -> String? in
            if s.byTenant[tenantID, default: 0] >= perTenant { return "tenant" }
            if s.all >= total { return "server" }
            s.byTenant[tenantID, default: 0] += 1
            s.all += 1
            return nil
        }
        switch refusal {
        case "tenant"?:
            refused.withLock { $0["tenant", default: 0] += 1 }
            throw HTTPError(.tooManyRequests, code: "too_many_streams",
                            message: "this tenant already has \(perTenant) job event streams open (max_event_streams_per_tenant); "
                                + "close one or poll GET /v1/jobs/{id}", headers: ["Retry-After": "5"])
        case "server"?:
            refused.withLock { $0["server", default: 0] += 1 }
            throw HTTPError(.serviceUnavailable, code: "too_many_streams",
                            message: "the server has \(total) job event streams open (max_event_streams); retry later or poll GET /v1/jobs/{id}",
                            headers: ["Retry-After": "5"])
        default:
            return Slot { [self] in
                open.withLock { s in
                    s.byTenant[tenantID, default: 1] -= 1
                    if s.byTenant[tenantID] == 0 { s.byTenant[tenantID] = nil }
                    s.all -= 1
                }
            }
        }
    }

    /// Streams open now.
    var openCount: Int { open.withLock { $0.all } }

    /// One open stream; frees its slot on deinit.
    final class Slot: Sendable {
        private let release: @Sendable () -> Void
        init(release: @escaping @Sendable () -> Void) { self.release = release }
        deinit { release() }
    }
}
