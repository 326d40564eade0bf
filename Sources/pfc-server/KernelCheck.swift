// KernelCheck: a command refuses to start when OpenBLAS's kernels cannot run on this CPU.
import Linalg

/// Stops a command at its start when `BLAS.currentCoreProblem` says OpenBLAS would run kernels this
/// CPU lacks (an `OPENBLAS_CORETYPE` pin for another CPU): a clear message and exit status 1 now,
/// instead of an illegal instruction at the first dense product, in the middle of a job.
enum KernelCheck {
    static func requireRunnableKernels() throws {
        if let problem = BLAS.currentCoreProblem { throw KernelCheckFailure(description: problem) }
    }
}

/// The error `KernelCheck` throws; ArgumentParser prints it as "Error: …".
struct KernelCheckFailure: Error, CustomStringConvertible {
    let description: String
}
