// WarmStartFISTA: the unrolled FISTA inference of Blocks/FISTAInference.swift, started from a given
// code instead of the floor, with the gradient with respect to that start (research/pfc.md §2.2:
// the factorized RNN warm-starts h_t from h_{t−1}, and with BPTT the gradient flows through it).
import Linalg

/// What the warm-started forward pass keeps for its backward pass (see `FISTATape`).
struct WarmStartTape: Sendable {
    let batch: Int, basis: Int, iterations: Int
    let chunks: [Range<Int>]
    var z: [Float]        // Z_t per chunk and iteration (Z_0 = the start)
    var u: [Float]        // U_t; overwritten by Ū_t in backward
    var scales: [Float]   // N × B stop-gradient scales
    let momentum: [Float] // β_t
    let gram: [Float]     // A = WᵀW, K×K
    let step: Float       // η
}

/// Recorded stop-gradient values of one inference (η and the N×B scales), so tests can freeze them.
struct FISTAStopGradients: Sendable {
    var step: Float
    var scales: [Float]
}

/// Unrolled projected-gradient NMF with FISTA momentum (research/pfc.md §1.2) on x ≈ W h, h ≥ floor,
/// started from `start` (B×K): `Z_0 = H_{−1} = start`, as `fista_right_update(…, H_tran_init)` does.
///
/// The iteration is exactly `FISTAInference`'s:
/// ```
/// U_t = Z_t − η(Z_t A − XᵀW),  H_t = diag(s_t) max(U_t, floor),  Z_{t+1} = H_t + β_t(H_t − H_{t−1})
/// ```
/// with η = 1/λmax(A) and s_t (cap of max(h) at max(x), per example) stop-gradient. Because β_0 = 0,
/// the start reaches the output only through Z_0, so ∂L/∂start = Z̄_0 = Ū_0 − η Ū_0 A.
enum WarmStartFISTA {
    /// Runs the inference. `w`: d×K, `x`: d×B, `start`: B×K (nil starts from the floor).
    static func forward(w: Matrix, x: Matrix, start: Matrix?, settings: FISTASettings,
                        frozen: FISTAStopGradients?, keepTape: Bool) -> (hT: Matrix, tape: WarmStartTape?) {
        precondition(w.rows == x.rows, "W has \(w.rows) rows but x has \(x.rows) features")
        let d = x.rows, b = x.cols, k = w.cols, n = max(1, settings.iterations)
        if let s = start { precondition(s.rows == b && s.cols == k, "start must be B×K") }
        let gram = Matrix.product(w, w, transA: .transposed)
        let eta: Float = frozen?.step ?? {
            let l = gram.storage.withUnsafeBufferPointer { PowerIteration.largestEigenvalue(of: $0.baseAddress!, k: k) }
            return l > 0 ? 1 / l : 1
        }()
        let xMax = x.columnMaxima()
        let momentum = FISTAInference.momentumSequence(n)
        let chunks = ComputeThreads.ranges(b)
        let zSlots = keepTape ? n : 2, uSlots = keepTape ? n : 1
        var zs = [Float](repeating: 0, count: zSlots * b * k)
        var us = [Float](repeating: 0, count: uSlots * b * k)
        var scales = [Float](repeating: 1, count: n * b)
        var hT = Matrix(rows: b, cols: k)
        let startValues = start?.storage ?? [Float](repeating: settings.floor, count: b * k)
        let frozenScales = frozen?.scales
        let floor = settings.floor, normalize = settings.normalizeColumns

        zs.withUnsafeMutableBufferPointer { zAll in
        us.withUnsafeMutableBufferPointer { uAll in
        scales.withUnsafeMutableBufferPointer { sAll in
        hT.storage.withUnsafeMutableBufferPointer { hOut in
        startValues.withUnsafeBufferPointer { st in
        x.storage.withUnsafeBufferPointer { xp in
        w.storage.withUnsafeBufferPointer { wp in
        gram.storage.withUnsafeBufferPointer { ap in
            let (zBase, uBase, sBase, hBase) = (zAll.baseAddress!, uAll.baseAddress!, sAll.baseAddress!, hOut.baseAddress!)
            let (stBase, xBase, wBase, aBase) = (st.baseAddress!, xp.baseAddress!, wp.baseAddress!, ap.baseAddress!)
            ComputeThreads.run(chunks.count) { c in
                let c0 = chunks[c].lowerBound, bc = chunks[c].count, kb = bc * k
                var etaXtW = [Float](repeating: 0, count: kb)
                var hPrev = Array(UnsafeBufferPointer(start: stBase + c0 * k, count: kb)) // H_{−1} = start
                var hCur = [Float](repeating: 0, count: kb)
                etaXtW.withUnsafeMutableBufferPointer { e in
                    BLAS.gemm(.transposed, .none, m: bc, n: k, k: d, alpha: eta, a: xBase + c0, lda: b,
                              b: wBase, ldb: k, beta: 0, c: e.baseAddress!, ldc: k)
                }
                let zRegion = zBase + zSlots * c0 * k, uRegion = uBase + uSlots * c0 * k
                zRegion.update(from: stBase + c0 * k, count: kb) // Z_0 = start
                etaXtW.withUnsafeBufferPointer { ep in
                hPrev.withUnsafeMutableBufferPointer { hpb in
                hCur.withUnsafeMutableBufferPointer { hcb in
                    var hp = hpb.baseAddress!, hc = hcb.baseAddress!
                    let e = ep.baseAddress!
                    for t in 0..<n {
                        let beta = momentum[t]
                        let z = zRegion + (keepTape ? t : t % 2) * kb
                        let zNext = zRegion + (keepTape ? t + 1 : (t + 1) % 2) * kb
                        let u = uRegion + (keepTape ? t : 0) * kb
                        for i in 0..<kb { u[i] = z[i] + e[i] }
                        BLAS.gemm(.none, .none, m: bc, n: k, k: k, alpha: -eta, a: z, lda: k, b: aBase, ldb: k, beta: 1, c: u, ldc: k)
                        let writeNext = t + 1 < n
                        for r in 0..<bc {
                            let row = r * k
                            var rowMax: Float = -.infinity
                            for j in 0..<k {
                                let v = Swift.max(u[row + j], floor)
                                hc[row + j] = v
                                rowMax = Swift.max(rowMax, v)
                            }
                            var s: Float = 1
                            if let fz = frozenScales {
                                s = fz[t * b + c0 + r]
                            } else if normalize && rowMax > xMax[c0 + r] {
                                s = xMax[c0 + r] / rowMax
                            }
                            sBase[t * b + c0 + r] = s
                            if writeNext {
                                for j in 0..<k {
                                    let h = hc[row + j] * s
                                    hc[row + j] = h
                                    zNext[row + j] = h + beta * (h - hp[row + j])
                                }
                            } else if s != 1 {
                                for j in 0..<k { hc[row + j] *= s }
                            }
                        }
                        swap(&hp, &hc)
                    }
                    (hBase + c0 * k).update(from: hp, count: kb)
                }
                }
                }
            }
        }
        }
        }
        }
        }
        }
        }
        }
        guard keepTape else { return (hT, nil) }
        return (hT, WarmStartTape(batch: b, basis: k, iterations: n, chunks: chunks, z: zs, u: us, scales: scales,
                                  momentum: momentum, gram: gram.storage, step: eta))
    }

    /// Backward through all N iterations (consumes the tape). Given ∂L/∂Hᵀ (B×K), returns ∂L/∂W (d×K),
    /// ∂L/∂x (d×B) and ∂L/∂start (B×K). Same adjoints as `FISTAInference.backward`, plus Z̄_0.
    static func backward(tape: inout WarmStartTape, w: Matrix, x: Matrix, gradHT: Matrix, settings: FISTASettings)
        -> (gradW: Matrix, gradX: Matrix, gradStart: Matrix)
    {
        let b = tape.batch, k = tape.basis, n = tape.iterations, d = x.rows
        precondition(gradHT.rows == b && gradHT.cols == k, "gradient shape mismatch")
        let eta = tape.step, floor = settings.floor
        let chunks = tape.chunks, beta = tape.momentum, parts = chunks.count
        var partialA = [Float](repeating: 0, count: parts * k * k)
        var partialW = [Float](repeating: 0, count: parts * d * k)
        var gradX = Matrix(rows: d, cols: b)
        var gradStart = Matrix(rows: b, cols: k)

        tape.u.withUnsafeMutableBufferPointer { uAll in
        tape.z.withUnsafeBufferPointer { zAll in
        tape.scales.withUnsafeBufferPointer { sAll in
        tape.gram.withUnsafeBufferPointer { ap in
        gradHT.storage.withUnsafeBufferPointer { gp in
        partialA.withUnsafeMutableBufferPointer { pA in
        partialW.withUnsafeMutableBufferPointer { pW in
        gradX.storage.withUnsafeMutableBufferPointer { gx in
        gradStart.storage.withUnsafeMutableBufferPointer { gs in
        x.storage.withUnsafeBufferPointer { xp in
        w.storage.withUnsafeBufferPointer { wp in
            let (uBase, zBase, sBase, aBase, gBase) = (uAll.baseAddress!, zAll.baseAddress!, sAll.baseAddress!, ap.baseAddress!, gp.baseAddress!)
            let (pABase, pWBase, gxBase, gsBase) = (pA.baseAddress!, pW.baseAddress!, gx.baseAddress!, gs.baseAddress!)
            let (xBase, wBase) = (xp.baseAddress!, wp.baseAddress!)
            ComputeThreads.run(parts) { c in
                let c0 = chunks[c].lowerBound, bc = chunks[c].count, kb = bc * k
                let uRegion = uBase + n * c0 * k, zRegion = zBase + n * c0 * k
                var z1 = [Float](repeating: 0, count: kb), z2 = [Float](repeating: 0, count: kb)
                var barB = [Float](repeating: 0, count: kb)
                z1.withUnsafeMutableBufferPointer { z1b in
                z2.withUnsafeMutableBufferPointer { z2b in
                barB.withUnsafeMutableBufferPointer { bbb in
                    var zb1 = z1b.baseAddress!, zb2 = z2b.baseAddress!
                    let bb = bbb.baseAddress!, g = gBase + c0 * k
                    for t in stride(from: n - 1, through: 0, by: -1) {
                        let c1 = t + 1 < n ? 1 + beta[t] : 0
                        let c2 = t + 2 < n ? -beta[t + 1] : 0
                        let ub = uRegion + t * kb
                        let isLast = t == n - 1
                        for r in 0..<bc {
                            let s = sBase[t * b + c0 + r], row = r * k
                            for j in 0..<k {
                                let i = row + j
                                var hbar = c1 * zb1[i] + c2 * zb2[i]
                                if isLast { hbar += g[i] }
                                let ubar = ub[i] >= floor ? hbar * s : 0
                                ub[i] = ubar
                                bb[i] += ubar
                                zb2[i] = ubar
                            }
                        }
                        // Z̄_t = Ū_t − η Ū_t A (also at t = 0: that is ∂L/∂start).
                        BLAS.gemm(.none, .none, m: bc, n: k, k: k, alpha: -eta, a: ub, lda: k, b: aBase, ldb: k, beta: 1, c: zb2, ldc: k)
                        swap(&zb1, &zb2)
                    }
                    (gsBase + c0 * k).update(from: zb1, count: kb)
                    for i in 0..<kb { bb[i] *= eta }
                    BLAS.gemm(.transposed, .none, m: k, n: k, k: n * bc, alpha: -eta, a: uRegion, lda: k,
                              b: zRegion, ldb: k, beta: 0, c: pABase + c * k * k, ldc: k)
                    BLAS.gemm(.none, .none, m: d, n: k, k: bc, alpha: 1, a: xBase + c0, lda: b, b: bb, ldb: k,
                              beta: 0, c: pWBase + c * d * k, ldc: k)
                    BLAS.gemm(.none, .transposed, m: d, n: bc, k: k, alpha: 1, a: wBase, lda: k, b: bb, ldb: k,
                              beta: 0, c: gxBase + c0, ldc: b)
                }
                }
                }
            }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }
        }

        // W̄ = W Σ_c (Ā_c + Ā_cᵀ) + Σ_c X_c B̄_c.
        var sym = Matrix(rows: k, cols: k)
        for c in 0..<parts {
            let off = c * k * k
            for i in 0..<k { for j in 0..<k { sym.storage[i * k + j] += partialA[off + i * k + j] + partialA[off + j * k + i] } }
        }
        var gradW = Matrix(rows: d, cols: k, storage: Array(partialW[0..<(d * k)]))
        for c in 1..<max(1, parts) {
            let off = c * d * k
            for i in 0..<(d * k) { gradW.storage[i] += partialW[off + i] }
        }
        gradW.accumulateProduct(w, sym)
        return (gradW, gradX, gradStart)
    }
}
