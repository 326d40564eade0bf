// ConnectionPool: a bounded set of connections lent to one thread at a time.
import Dispatch
import Synchronization

/// A bounded pool: at most `capacity` connections exist; callers wait up to `acquireTimeout`
/// for a free one. Idle connections sit in a `Mutex`-guarded free list.
final class ConnectionPool<Connection: AnyObject & Sendable>: Sendable {
    private let slots: DispatchSemaphore
    private let idle = Mutex<[Connection]>([])
    private let open: @Sendable () throws -> Connection
    let capacity: Int
    private let acquireTimeout: Double

    init(capacity: Int, acquireTimeout: Double, open: @escaping @Sendable () throws -> Connection) {
        precondition(capacity > 0, "a pool needs at least one connection")
        self.capacity = capacity
        self.acquireTimeout = acquireTimeout
        self.slots = DispatchSemaphore(value: capacity)
        self.open = open
    }

    /// Lends a connection to `body`. `keep` decides afterwards whether it goes back to the free
    /// list (true) or is closed (false), e.g. when it broke or is left inside a transaction.
    func withConnection<T>(keep: (Connection) -> Bool, _ body: (Connection) throws -> T) throws -> T {
        guard slots.wait(timeout: .now() + acquireTimeout) == .success else {
            throw StoreError.poolExhausted(waitedSeconds: acquireTimeout)
        }
        defer { slots.signal() }
        let connection = try idle.withLock { $0.popLast() } ?? open()
        defer {
            if keep(connection) { idle.withLock { $0.append(connection) } }
        }
        return try body(connection)
    }

    /// Closes every idle connection (those lent out close when they come back and are dropped).
    func drain() {
        _ = idle.withLock { list -> Int in
            let count = list.count
            list.removeAll()
            return count
        }
    }
}
