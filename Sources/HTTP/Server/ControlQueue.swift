// ControlQueue: where signals, shutdown deadlines and heartbeats run.
import Dispatch

/// A serial queue of its own for short control work (signal handlers, the shutdown deadline,
/// SSE heartbeats). Never `DispatchQueue.global()`: compute splits its batches with
/// `concurrentPerform` over the global pool, which then has no thread free for seconds at a
/// time; a queue made with a label gets a thread even then (it is overcommit in libdispatch).
public enum ControlQueue {
    /// The shared control queue.
    public static let shared = DispatchQueue(label: "pfc.control")
}
