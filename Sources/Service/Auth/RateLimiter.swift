// RateLimiter: one token bucket per API key, and the middleware that answers 429 with Retry-After.
import Foundation
import HTTP
import Synchronization

/// Token buckets keyed by API key id: each holds up to `burst` tokens, refills at `rate` tokens a
/// second, and each request takes one. Memory is bounded: a bucket that has refilled to full is
/// the same as no bucket, so such buckets are swept (amortized, when the table doubles), and past
/// `capacity` keys the least recently used buckets go too. Thread-safe; one lock, O(1) per request.
final class RateLimiter: Sendable {
    /// What a request gets.
    enum Decision: Equatable {
        case allowed
        /// Over the rate: a token is `retryAfterSeconds` (≥ 1, rounded up) away.
        case limited(retryAfterSeconds: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private struct State {
        var buckets: [String: Bucket] = [:]
        var sweepAtCount = RateLimiter.minimumSweepCount
        var limited = 0
    }

    private static let minimumSweepCount = 1024

    /// Tokens per second.
    let rate: Double
    /// Bucket size.
    let burst: Double
    /// Most buckets kept.
    let capacity: Int
    private let state = Mutex(State())

    /// A limiter of `rate` requests a second with bursts of `burst`, tracking at most `capacity` keys.
    init(rate: Double, burst: Int, capacity: Int) {
        precondition(rate > 0 && rate.isFinite && burst >= 1 && capacity >= 1, "RateLimiter needs rate > 0, burst ≥ 1, capacity ≥ 1")
        self.rate = rate
        self.burst = Double(burst)
        self.capacity = capacity
    }

    /// Takes a token from `key`'s bucket if it has one.
    func take(key: String, now: ContinuousClock.Instant = .now) -> Decision {
        state.withLock { s in
            var bucket = s.buckets[key].map { refilled($0, at: now) } ?? Bucket(tokens: burst, updated: now)
            let decision: Decision
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                decision = .allowed
            } else {
                // Capped at a day, so that a tiny configured rate cannot overflow the conversion.
                decision = .limited(retryAfterSeconds: Int(min(86_400, max(1, ((1 - bucket.tokens) / rate).rounded(.up)))))
            }
            let isNew = s.buckets.updateValue(bucket, forKey: key) == nil
            if isNew && s.buckets.count > min(s.sweepAtCount, capacity) { evict(&s, now: now) }
            return decision
        }
    }

    /// Counts a 429 for `tenantID` (for `/metrics`: one total, since `/metrics` needs no key and
    /// must not list the tenants or how busy each is).
    func recordLimited(tenantID: String) {
        state.withLock { $0.limited += 1 }
    }

    /// Buckets in memory now.
    var trackedKeys: Int { state.withLock { $0.buckets.count } }

    /// 429s so far.
    var limitedCount: Int { state.withLock { $0.limited } }

    /// The limiter's metrics in the Prometheus text format.
    func prometheusText() -> String {
        let (limited, tracked) = state.withLock { ($0.limited, $0.buckets.count) }
        var out = "# HELP pfc_rate_limited_total Requests answered 429 rate_limited by the per-API-key rate limit.\n"
        out += "# TYPE pfc_rate_limited_total counter\n"
        out += "pfc_rate_limited_total \(limited)\n"
        out += "# HELP pfc_rate_limit_tracked_keys API keys with a token bucket in memory.\n# TYPE pfc_rate_limit_tracked_keys gauge\n"
        out += "pfc_rate_limit_tracked_keys \(tracked)\n"
        out += "# HELP pfc_rate_limit_requests_per_second The per-API-key rate limit (burst: pfc_rate_limit_burst).\n"
        out += "# TYPE pfc_rate_limit_requests_per_second gauge\npfc_rate_limit_requests_per_second \(rate)\n"
        out += "# HELP pfc_rate_limit_burst The per-API-key bucket size.\n# TYPE pfc_rate_limit_burst gauge\npfc_rate_limit_burst \(Int(burst))\n"
        return out
    }

    private func refilled(_ bucket: Bucket, at now: ContinuousClock.Instant) -> Bucket {
        let elapsed = now - bucket.updated
        let seconds = max(0, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        return Bucket(tokens: min(burst, bucket.tokens + seconds * rate), updated: max(now, bucket.updated))
    }

    /// Drops full buckets (no loss: a missing bucket starts full); past `capacity`, also the least
    /// recently used (which then start again with a full bucket). The next sweep waits until the table has doubled, so sweeps cost O(1) amortized.
    private func evict(_ s: inout State, now: ContinuousClock.Instant) {
        s.buckets = s.buckets.filter { refilled($0.value, at: now).tokens < burst }
        if s.buckets.count > capacity {
            // Down to 90 % of capacity, so that a table full of busy keys is not re-sorted per new key.
            let keep = capacity - capacity / 10
            let oldest = s.buckets.sorted { $0.value.updated < $1.value.updated }.prefix(s.buckets.count - keep)
            for (key, _) in oldest { s.buckets[key] = nil }
        }
        s.sweepAtCount = max(Self.minimumSweepCount, 2 * s.buckets.count)
    }
}

/// Applies a `RateLimiter` to authenticated requests (after `TenantAuthMiddleware`): over the
/// rate, 429 `rate_limited` with `Retry-After` in whole seconds.
struct RateLimitMiddleware: Middleware {
    let limiter: RateLimiter

    func handle(_ request: Request, context: RequestContext,
                next: (Request, RequestContext) throws -> Response) throws -> Response {
        guard let tenant = context.principal, let keyID = context.attributes[TenantAuthMiddleware.keyIDAttribute] else {
            return try next(request, context)
        }
        guard case .limited(let seconds) = limiter.take(key: keyID) else { return try next(request, context) }
        limiter.recordLimited(tenantID: tenant)
        let rate = limiter.rate == limiter.rate.rounded() ? "\(Int(limiter.rate))" : "\(limiter.rate)"
        throw HTTPError(.tooManyRequests, code: "rate_limited",
                        message: "this API key is over its rate limit of \(rate) requests/s (bursts of \(Int(limiter.burst))); retry after \(seconds) s",
                        headers: ["Retry-After": "\(seconds)"])
    }
}

