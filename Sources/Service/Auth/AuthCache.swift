// AuthCache: recently authenticated API keys, and recently refused secrets, by the SHA-256 of the
// presented secret, each for a short lifetime, so a busy key costs no database query per request
// and a flood of the same bad key costs one query per lifetime.

import Foundation
import Storage
import Synchronization

/// Key hash → (tenant, key id) for at most `lifetime`, and key hash → "refused" for at most
/// `lifetime`, each table bounded in entries. The bound it keeps:
/// - a key revoked or deleted by another process (`pfc-server keys revoke`, another replica)
///   stops working within `lifetime` (default 2 s);
/// - a key in a rotation's grace period stops at the grace period's end (an entry never outlives
///   its key's `revoked_at`);
/// - a key created elsewhere works within `lifetime` even if its secret was refused just before;
/// - any change through this process's `APIKeys` (create, revoke, rotate) drops every entry at once.
/// Thread-safe: one lock around two dictionary look-ups; database calls run outside it.
final class AuthCache: Sendable {
    /// What `authenticate` found in the table.
    enum Entry: Equatable {
        case valid(AuthenticatedKey)
        case refused
    }

    private struct Cached {
        var entry: Entry
        var expires: ContinuousClock.Instant
        var generation: UInt64
    }

    private struct State {
        var valid: [String: Cached] = [:]
        var refused: [String: Cached] = [:]
        var hits = 0
        var misses = 0
    }

    /// How long an answer is trusted.
    let lifetime: Duration
    /// Most valid keys, and most refused secrets, kept.
    let capacity: Int
    let refusedCapacity: Int
    private let changes: KeyChangeCounter
    private let state = Mutex(State())

    /// A cache trusting answers for `lifetime`, keeping at most `capacity` valid keys and
    /// `refusedCapacity` refused secrets, dropped whenever `changes` moves.
    init(lifetime: Duration, capacity: Int, refusedCapacity: Int, changes: KeyChangeCounter = .process) {
        precondition(lifetime > .zero && capacity >= 1 && refusedCapacity >= 1, "AuthCache needs lifetime > 0 and capacities ≥ 1")
        self.lifetime = lifetime
        self.capacity = capacity
        self.refusedCapacity = refusedCapacity
        self.changes = changes
    }

    /// The key `secret` belongs to, or nil if it is unknown or revoked: from the table when an
    /// answer younger than `lifetime` is there, else from `lookup` (whose answer is kept until
    /// `lifetime` passes or, for a valid key, its `validUntil`, whichever is first).
    func authenticate(secret: String, now: ContinuousClock.Instant = .now,
                      lookup: (String) throws -> (key: AuthenticatedKey, validUntil: Date?)?) throws -> AuthenticatedKey? {
        let hash = APIKey.hash(secret)
        // Read before the look-up: a change that lands while it runs makes its answer stale at once.
        let generation = changes.value
        if let entry = cached(hash, now: now, generation: generation) {
            if case .valid(let key) = entry { return key }
            return nil
        }
        let found = try lookup(secret)
        var expires = now + lifetime
        if let until = found?.validUntil {
            let left = until.timeIntervalSinceNow
            expires = min(expires, now + .milliseconds(Int64(max(0, left) * 1000)))
        }
        let cached = Cached(entry: found.map { .valid($0.key) } ?? .refused, expires: expires, generation: generation)
        state.withLock { s in
            if found != nil {
                s.refused[hash] = nil
                Self.insert(cached, for: hash, into: &s.valid, capacity: capacity, now: now)
            } else {
                s.valid[hash] = nil
                Self.insert(cached, for: hash, into: &s.refused, capacity: refusedCapacity, now: now)
            }
        }
        return found?.key
    }

    /// Valid keys and refused secrets held now (expired ones included until swept).
    var counts: (valid: Int, refused: Int) { state.withLock { ($0.valid.count, $0.refused.count) } }

    /// Answers served from the table, and answers that needed the database.
    var hitsAndMisses: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }

    private func cached(_ hash: String, now: ContinuousClock.Instant, generation: UInt64) -> Entry? {
        state.withLock { s in
            if let c = s.valid[hash] ?? s.refused[hash], c.expires > now, c.generation == generation {
                s.hits += 1
                return c.entry
            }
            s.misses += 1
            return nil
        }
    }

    /// Adds `entry`; a full table first loses its expired or outdated entries and then, if still
    /// above three quarters full, arbitrary ones down to that, so a sweep (O(n)) happens at most
    /// once per capacity/4 insertions.
    private static func insert(_ entry: Cached, for hash: String, into table: inout [String: Cached], capacity: Int,
                               now: ContinuousClock.Instant) {
        if table[hash] == nil && table.count >= capacity {
            table = table.filter { $0.value.expires > now && $0.value.generation == entry.generation }
            let keep = capacity - max(1, capacity / 4)
            while table.count > keep { table.remove(at: table.startIndex) }
        }
        table[hash] = entry
    }
}

/// A count of API-key changes (create, revoke, rotate) made through this process's `APIKeys`:
/// cached answers from before a change are not used after it.
final class KeyChangeCounter: Sendable {
    private let count = Atomic<UInt64>(0)

    /// The process's counter, moved by `APIKeys`.
    static let process = KeyChangeCounter()

    /// A counter of its own (for tests).
    init() {}

    /// Changes so far.
    var value: UInt64 { count.load(ordering: .acquiring) }

    /// Records a change (after it committed).
    func record() { count.add(1, ordering: .releasing) }
}
