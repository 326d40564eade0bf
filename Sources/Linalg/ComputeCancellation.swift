// ComputeCancellation: cooperative cancellation of long compute (a prediction whose client went
// away, a server past its shutdown deadline) without threading a flag through every kernel's API.
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A flag a caller raises to ask the compute it started to stop early. Kernels that check it (the
/// FISTA iterations) end their loops at the next iteration; their results are then meaningless,
/// and the caller must check `isCancelled` and discard them.
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    private let check: (@Sendable () -> Bool)?

    /// A token raised only by `cancel()`.
    public init() { check = nil }

    /// A token that also reads as cancelled whenever `isCancelled` returns true (an outside flag,
    /// such as a request's).
    public init(_ isCancelled: @escaping @Sendable () -> Bool) { check = isCancelled }

    /// Asks the compute to stop.
    public func cancel() { flag.store(true, ordering: .relaxed) }

    /// True once `cancel()` was called or the outside flag is raised.
    public var isCancelled: Bool { flag.load(ordering: .relaxed) || (check?() ?? false) }
}

/// The token of the compute running on the current thread. Kernels read it once on the calling
/// thread (`current`) and poll it from their worker chunks.
public enum ComputeCancellation {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    /// The token set by the innermost `run` on this thread, if any.
    public static var current: CancellationToken? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<CancellationToken>.fromOpaque(p).takeUnretainedValue()
    }

    /// Runs `body` with `token` as this thread's current token (restoring the previous one after).
    public static func run<T>(_ token: CancellationToken, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(token).toOpaque())
        defer { pthread_setspecific(key, previous) }
        return try withExtendedLifetime(token) { try body() }
    }
}
