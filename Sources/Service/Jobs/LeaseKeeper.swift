// LeaseKeeper: keeps a claimed job's lease alive for as long as its worker runs it, whatever the
// job is doing. The runners heartbeat with their progress between steps and chunks, but some phases
// have no steps: loading the weights and datasets (a 1 GiB dataset takes longer than the 30 s lease),
// the earlier tasks' validation splits, the mean activations and the version's commit. Without this, a
// second worker (here or on a replica) reclaimed the job during such a phase and ran it again beside
// the first: twice the compute, and the first attempt's work lost.
//
// The lease still protects what it is for: when the process dies, the keeper dies with it and the
// lease expires as before; when a runner returns without writing (shutdown, the test hook that
// simulates a death), the keeper stops with it.
import Dispatch
import Foundation
import Logging
import Storage
import Synchronization

/// A timer that extends one job's lease every third of its duration (no progress is written: that
/// stays the runner's) until `stop()` is called or the lease is found lost or the job finished.
/// (`@unchecked`: the timer is only cancelled after `init`, which Dispatch allows from any thread.)
final class LeaseKeeper: @unchecked Sendable {
    private let timer: any DispatchSourceTimer
    private let stopped = Flag()

    /// Set once the keeper stops (shared with the timer's handler).
    private final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
        /// Sets the flag; true if it was not set before.
        func setFirst() -> Bool { !value.exchange(true, ordering: .relaxed) }
    }

    /// Starts keeping `jobID`'s lease for `owner`: the first extension one interval from now.
    init(store: any Store, jobID: String, owner: String, leaseSeconds: Double, logger: Logger) {
        // A third of the lease: two extensions can fail (a busy pool, a restarting database) before it lapses.
        let interval = Self.interval(leaseSeconds: leaseSeconds)
        let queue = DispatchQueue(label: "pfc-lease-\(jobID)", qos: .utility)
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(50))
        let stopped = self.stopped
        let timer = self.timer
        timer.setEventHandler {
            guard !stopped.isSet else { return }
            do {
                _ = try store.heartbeat(jobID: jobID, owner: owner, leaseDuration: leaseSeconds)
            } catch StoreError.leaseLost {
                // Finished, cancelled or owned by another worker: nothing left to keep.
                stopped.set()
                timer.cancel()
            } catch {
                logger.warning("lease extension failed; trying again", metadata: ["job": "\(jobID)", "error": "\(error)"])
            }
        }
        timer.resume()
    }

    /// The time between extensions for a lease of `leaseSeconds` (at least 50 ms).
    static func interval(leaseSeconds: Double) -> DispatchTimeInterval {
        let third = leaseSeconds.isFinite ? max(0.05, min(leaseSeconds / 3, 86_400)) : 10
        return .milliseconds(Int(third * 1000))
    }

    /// Stops extending the lease (the runner returned). An extension already running finishes first.
    func stop() {
        guard stopped.setFirst() else { return }
        timer.cancel()
    }

    deinit { stop() }
}
