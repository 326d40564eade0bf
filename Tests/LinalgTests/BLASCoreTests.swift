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

    /// Kernels the CPU lacks are a problem (the process would die of an illegal instruction), named
    /// with the pin that chose them and a family that runs; kernels it has are not.
    @Test func problemOnlyForKernelsTheCPULacks() {
        let skx = BLAS.coreProblem(core: "SkylakeX", cpuLevel: .avx2FMA, pinned: "SkylakeX")
        #expect(skx?.contains("OPENBLAS_CORETYPE=SkylakeX selects") == true)
        #expect(skx?.contains("need AVX-512") == true && skx?.hasSuffix("set it to Haswell") == true)
        #expect(BLAS.coreProblem(core: "Cooperlake", cpuLevel: .portable, pinned: "Cooperlake") != nil)
        #expect(BLAS.coreProblem(core: "SAPPHIRERAPIDS", cpuLevel: .avx2FMA, pinned: nil)?.hasPrefix("OpenBLAS chose its SAPPHIRERAPIDS kernels") == true)
        #expect(BLAS.coreProblem(core: "Haswell", cpuLevel: .portable, pinned: "Haswell")?.contains("need AVX2 and FMA") == true)
        #expect(BLAS.coreProblem(core: "SkylakeX", cpuLevel: .avx512, pinned: "SkylakeX") == nil)
        #expect(BLAS.coreProblem(core: "Haswell", cpuLevel: .avx2FMA, pinned: "Haswell") == nil)
        #expect(BLAS.coreProblem(core: "Zen", cpuLevel: .avx512, pinned: nil) == nil)
        #expect(BLAS.coreProblem(core: "Sandybridge", cpuLevel: .portable, pinned: "Sandybridge") == nil)
        // This process runs (it has done dense products before this test), so it has no problem.
        #expect(BLAS.currentCoreProblem == nil)
    }

    /// This process's advice agrees with what it runs: none unless the kernels are AVX2 ones.
    @Test func currentAdviceMatchesTheRunningCore() {
        if BLAS.currentCoreAdvice != nil { #expect(["haswell", "zen"].contains(BLAS.coreName.lowercased())) }
    }
}
