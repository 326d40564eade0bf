// ComputeThreads: how many threads the compute kernels split a batch over, the helper threads
// they split onto, and the lower scheduling priority every compute thread runs at.
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Engine-level parallelism. Kernels whose work splits by example (FISTA inference is independent
/// per example once W is fixed) run `count` chunks at once, each calling single-threaded BLAS:
/// on small products that beats letting OpenBLAS thread every call.
///
/// Compute runs below the HTTP event loops: the helper threads `run` splits onto, and the threads
/// that call `lowerCurrentThreadPriority()` (training jobs, task streams, predictions), take a nice
/// value of `niceness`. Under contention the scheduler then gives the loops their turn within a
/// slice instead of after a whole batch, so a request is read and answered while a batch computes;
/// with the CPU otherwise idle compute still gets all of it.
public enum ComputeThreads {
    private static let value = Atomic<Int>(1)

    /// The nice value compute threads run at (0 is the default; the loops stay at 0).
    public static let niceness: Int32 = 10

    /// Uses `n` threads for chunked kernels and one BLAS thread per call (process-wide).
    public static func set(_ n: Int) {
        value.store(max(1, n), ordering: .relaxed)
        BLAS.setThreads(1)
    }

    /// Threads chunked kernels use (1 until `set` is called).
    public static var count: Int { value.load(ordering: .relaxed) }

    /// Gives the calling thread the compute priority (`niceness`). For threads made to compute;
    /// Linux keeps the nice value per thread. Raising one's own nice value needs no privilege.
    public static func lowerCurrentThreadPriority() {
        #if canImport(Glibc)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }

    /// Splits `0..<total` into at most `parts` (default `count`) contiguous ranges of at least `minimum` elements.
    public static func ranges(_ total: Int, parts requested: Int? = nil, minimum: Int = 16) -> [Range<Int>] {
        let parts = max(1, min(requested ?? count, total / max(1, minimum)))
        return (0..<parts).map { p in (total * p / parts)..<(total * (p + 1) / parts) }
    }

    /// Runs `body(i)` for `i` in `0..<n`, concurrently when `n > 1`, and returns when all are done.
    /// The bodies must touch disjoint memory (each chunk writes only its own rows and buffers).
    /// The calling thread takes chunks too; up to `n − 1` helper threads join it.
    public static func run(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { body(0); return }
        ComputePool.shared.run(n, body)
    }
}

/// Persistent helper threads at the compute priority (DispatchQueue.concurrentPerform's workers
/// are the process's shared pool, whose priority cannot be set). A `run` posts one entry per
/// helper it wants; whichever helpers take one claim chunk indices beside the caller. Before
/// returning, the caller withdraws entries nobody took and waits for the helpers that did, so the
/// body never outlives the call. Nested and concurrent calls are safe: a caller never waits for a
/// helper that has not started on its job, and always works through the chunks itself.
final class ComputePool: @unchecked Sendable {
    static let shared = ComputePool()

    /// One `run` call: its body and the next chunk index to claim.
    private final class Job: @unchecked Sendable {
        let body: (Int) -> Void
        let n: Int
        let next = Atomic<Int>(0)
        /// Signalled once by every helper that took an entry, after it let go of the job.
        let retired = DispatchSemaphore(value: 0)

        init(body: @escaping (Int) -> Void, n: Int) {
            self.body = body
            self.n = n
        }

        /// Claims and runs chunks until none is left.
        func work() {
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= n { return }
                body(i)
            }
        }
    }

    private struct State {
        var entries: [Job] = []
        var helpers = 0
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    /// Most helper threads ever started.
    private let maximumHelpers = 64

    func run(_ n: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { escapable in
            let job = Job(body: escapable, n: n)
            let wanted = min(n - 1, maximumHelpers)
            let start = state.withLock { s -> Int in
                for _ in 0..<wanted { s.entries.append(job) }
                let missing = max(0, wanted - s.helpers)
                s.helpers += missing
                return missing
            }
            for _ in 0..<start { startHelper() }
            for _ in 0..<wanted { wake.signal() }
            job.work()
            let withdrawn = state.withLock { s -> Int in
                let before = s.entries.count
                s.entries.removeAll { $0 === job }
                return before - s.entries.count
            }
            for _ in 0..<(wanted - withdrawn) { job.retired.wait() }
        }
    }

    private func startHelper() {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 8 << 20)
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let status = pthread_create(&thread, &attributes, { context in
            let pool = Unmanaged<ComputePool>.fromOpaque(context!).takeRetainedValue()
            ComputeThreads.lowerCurrentThreadPriority()
            pool.helperLoop()
            return nil
        }, context)
        if status == 0 {
            pthread_detach(thread)
        } else {
            // No thread: the callers do the chunks themselves (they never wait for a helper that did not start).
            Unmanaged<ComputePool>.fromOpaque(context).release()
            state.withLock { $0.helpers -= 1 }
        }
    }

    private func helperLoop() {
        while true {
            wake.wait()
            // The job (and with it the caller's body) is released when `takeAndWork` returns, before
            // the caller is told: it may return from `run` the moment it is.
            takeAndWork()?.signal()
        }
    }

    /// Takes the oldest entry, if any, works on its job, and returns the job's `retired` semaphore.
    private func takeAndWork() -> DispatchSemaphore? {
        guard let job = state.withLock({ $0.entries.isEmpty ? nil : $0.entries.removeFirst() }) else { return nil }
        job.work()
        return job.retired
    }
}
