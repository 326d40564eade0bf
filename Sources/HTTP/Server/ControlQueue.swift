// ControlQueue: where signals, shutdown deadlines and heartbeats run.
import Dispatch

/// A serial queue of its own for short control work (signal handlers, the shutdown deadline,
/// SSE heartbeats). Never `DispatchQueue.global()`: anything that fills the global pool (compute
/// once split its batches there with `concurrentPerform`; it has helper threads of its own now)
/// would leave it no thread; a queue made with a label gets one even then (it is overcommit in
/// libdispatch).
public enum ControlQueue {
    /// The shared control queue.
    public static let shared = DispatchQueue(label: "pfc.control")
}
