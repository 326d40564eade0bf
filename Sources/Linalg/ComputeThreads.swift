// ComputeThreads: how many threads the compute kernels split a batch over.
import Dispatch
import Synchronization

/// Engine-level parallelism. Kernels whose work splits by example (FISTA inference is independent
/// per example once W is fixed) run `count` chunks at once, each calling single-threaded BLAS:
/// on small products that beats letting OpenBLAS thread every call.
public enum ComputeThreads {
    private static let value = Atomic<Int>(1)

    /// Uses `n` threads for chunked kernels and one BLAS thread per call (process-wide).
    public static func set(_ n: Int) {
        value.store(max(1, n), ordering: .relaxed)
        BLAS.setThreads(1)
    }

    /// Threads chunked kernels use (1 until `set` is called).
    public static var count: Int { value.load(ordering: .relaxed) }

    /// Splits `0..<total` into at most `parts` (default `count`) contiguous ranges of at least `minimum` elements.
    public static func ranges(_ total: Int, parts requested: Int? = nil, minimum: Int = 16) -> [Range<Int>] {
        let parts = max(1, min(requested ?? count, total / max(1, minimum)))
        return (0..<parts).map { p in (total * p / parts)..<(total * (p + 1) / parts) }
    }

    /// Runs `body(i)` for `i` in `0..<n`, concurrently when `n > 1`, and returns when all are done.
    /// The bodies must touch disjoint memory (each chunk writes only its own rows and buffers).
    public static func run(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendableBox(escapable)
            DispatchQueue.concurrentPerform(iterations: n) { box.value($0) }
        }
    }
}

/// Carries a value into a `@Sendable` closure when the caller guarantees there is no data race.
struct UncheckedSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
