import Testing
@testable import Linalg

/// Which kernels OpenBLAS runs, and the operator warning when they waste an AVX-512 CPU.
@Suite struct BLASCoreTests {
    @Test func coreNameIsReported() {
        #expect(!BLAS.coreName.isEmpty && BLAS.coreName != "unknown")
    }

    @Test func adviceOnlyForAVX2KernelsOnAnAVX512CPU() {
        let pinned = BLAS.coreAdvice(core: "Haswell", cpuHasAVX512: true, pinned: "Haswell")
        #expect(pinned?.contains("OPENBLAS_CORETYPE=Haswell is set") == true)
        #expect(BLAS.coreAdvice(core: "Zen", cpuHasAVX512: true, pinned: nil)?.contains("does not know the CPU") == true)
        #expect(BLAS.coreAdvice(core: "Haswell", cpuHasAVX512: false, pinned: "Haswell") == nil)
        #expect(BLAS.coreAdvice(core: "SkylakeX", cpuHasAVX512: true, pinned: nil) == nil)
        #expect(BLAS.coreAdvice(core: "Cooperlake", cpuHasAVX512: true, pinned: "Cooperlake") == nil)
    }

    /// This process's advice agrees with what it runs: none unless the kernels are AVX2 ones.
    @Test func currentAdviceMatchesTheRunningCore() {
        if BLAS.currentCoreAdvice != nil { #expect(["haswell", "zen"].contains(BLAS.coreName.lowercased())) }
    }
}
