// FISTAStatistics: how sparse one unrolled inference was (issue 14: the active fraction per
// iteration), and which passes ran on the active-set (sparse) kernels.
import Linalg
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which products the unrolled inference uses (research/pfc.md §1.2 either way; the results agree to
/// float rounding). Not part of a model's stored settings.
public enum FISTAKernel: String, Sendable, Codable, CaseIterable {
    /// Per iteration and per batch chunk, the sparse products when the measured active fraction is
    /// below the planned split's break-even (`ActiveSetProduct`), else the dense ones.
    case automatic
    /// Always the dense products (the engine before issue 14).
    case dense
    /// The sparse products on every iteration that has an active set (all but the first).
    case sparse

    /// The kernel a pass over `entries` code entries × iterations runs. A debug build runs a large
    /// `.automatic` pass (over 10⁶) as `.dense`: the cost model is calibrated on optimized code, and the
    /// SIMD gather kernels are not inlined at -Onone, many times slower than BLAS there. Small passes (the
    /// unit tests of the choice) and explicit `.sparse` run as asked.
    func resolved(entries: Int) -> FISTAKernel {
        #if DEBUG
        return self == .automatic && entries > 1_000_000 ? .dense : self
        #else
        return self
        #endif
    }
}

/// The sparsity of one forward pass of `FISTAInference` over a batch.
///
/// `activeFraction[t]` is the fraction of the B×K code entries that the clamp left at or above the
/// floor after iteration t (`U_t ≥ floor`: the entries that are alive; the others are exactly
/// `floor × s_b`). `sparseFraction` is the share of (iteration, chunk) products of the forward pass
/// that ran on the sparse kernels.
public struct FISTAStatistics: Sendable, Codable, Equatable {
    /// Examples B in the batch.
    public var examples: Int
    /// Basis size K.
    public var basis: Int
    /// Fraction of entries at or above the floor after each of the N iterations.
    public var activeFraction: [Float]
    /// Share of the forward pass's (iteration, chunk) products that ran sparse.
    public var sparseFraction: Float
    /// True when the pass kept a tape (training), false for prediction.
    public var training: Bool

    enum CodingKeys: String, CodingKey {
        case examples, basis, training
        case activeFraction = "active_fraction", sparseFraction = "sparse_fraction"
    }

    /// The mean of `activeFraction` over the iterations.
    public var meanActiveFraction: Float {
        activeFraction.isEmpty ? 0 : activeFraction.reduce(0, +) / Float(activeFraction.count)
    }

    public init(examples: Int, basis: Int, activeFraction: [Float], sparseFraction: Float, training: Bool) {
        self.examples = examples
        self.basis = basis
        self.activeFraction = activeFraction
        self.sparseFraction = sparseFraction
        self.training = training
    }

    // MARK: The last passes on the current thread

    private final class Slot {
        var lastTraining: FISTAStatistics?
        var lastPrediction: FISTAStatistics?
        var recording: [FISTAStatistics]?
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in if let p { Unmanaged<AnyObject>.fromOpaque(p).release() } }
        return k
    }()

    private static var slot: Slot {
        if let p = pthread_getspecific(key) { return Unmanaged<Slot>.fromOpaque(p).takeUnretainedValue() }
        let s = Slot()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    /// Called by `FISTAInference.forward` on the calling thread after every pass.
    static func note(_ s: FISTAStatistics) {
        let slot = slot
        if s.training { slot.lastTraining = s } else { slot.lastPrediction = s }
        slot.recording?.append(s)
    }

    /// The statistics of the last training (tape-keeping) pass that ran on this thread: after a
    /// training step, the step's last block (for a residual network, its second block).
    public static var lastTraining: FISTAStatistics? { slot.lastTraining }

    /// The statistics of the last prediction (no tape) pass that ran on this thread.
    public static var lastPrediction: FISTAStatistics? { slot.lastPrediction }

    /// Runs `body` and returns, beside its result, the statistics of every inference pass it ran
    /// on this thread, in order (for a network: one per block per forward pass). Nests.
    public static func recording<T>(_ body: () throws -> T) rethrows -> (result: T, passes: [FISTAStatistics]) {
        let slot = slot
        let outer = slot.recording
        slot.recording = []
        defer {
            if let outer { slot.recording = outer + (slot.recording ?? []) } else { slot.recording = nil }
        }
        let r = try body()
        return (r, slot.recording ?? [])
    }
}
