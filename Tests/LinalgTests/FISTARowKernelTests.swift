import Testing
@testable import Linalg

/// The fused FISTA row passes (FISTARows.c) against the scalar Swift loops they replaced, bit for
/// bit, at each vector level the CPU has, on widths with and without an 8-wide remainder. Bit
/// equality matters: the active-set engine finds the floor entries of Z_{t+1} by comparing them
/// with the constant c_{t+1} computed in Swift.
@Suite(.serialized) struct FISTARowKernelTests {
    func levels() -> [SparseRowKernels.VectorLevel] {
        SparseRowKernels.availableVectorLevels
    }

    /// Values around the floor, some exactly at it, some below (negative), some far above.
    static func values(_ n: Int, floor: Float, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { i in
            switch i % 4 {
            case 0: return floor
            case 1: return -rng.uniform()
            default: return floor + rng.uniform() * (i % 3 == 0 ? 1e-5 : 2)
            }
        }
    }

    /// An overflowed entry (NaN) stays NaN through the clamp, as `Swift.max(u, floor)` kept it, and
    /// does not enter the row maximum: clamping it to the floor would hide the overflow from the
    /// loss, and a diverged training run would "succeed" with all-floor codes (HardeningTests).
    @Test(arguments: [7, 8, 37, 300])
    func theClampKeepsNaNAsSwiftMaxDid(_ k: Int) {
        let floor: Float = 1e-5
        var u = Self.values(k, floor: floor, seed: UInt64(k) &+ 7)
        for j in stride(from: 1, to: k, by: 3) { u[j] = .nan }
        var refH = [Float](repeating: 0, count: k), refMax = -Float.infinity, refAlive = 0
        for j in 0..<k { refAlive += u[j] >= floor ? 1 : 0; refH[j] = max(u[j], floor); refMax = max(refMax, refH[j]) }
        #expect(refH.contains { $0.isNaN } && !refMax.isNaN)
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var hc = [Float](repeating: 0, count: k)
            let (alive, rowMax) = u.withUnsafeBufferPointer { up in
                hc.withUnsafeMutableBufferPointer { FISTARowKernels.clamp(k: k, u: up.baseAddress!, floor: floor, into: $0.baseAddress!) }
            }
            #expect(alive == refAlive, "\(level)")
            #expect(rowMax.bitPattern == refMax.bitPattern, "\(level)")
            for j in 0..<k {
                #expect(hc[j].isNaN == refH[j].isNaN && (hc[j].isNaN || hc[j].bitPattern == refH[j].bitPattern), "\(level) j \(j)")
            }
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }

    @Test(arguments: [7, 8, 37, 300])
    func forwardPassesMatchTheScalarLoops(_ k: Int) {
        let floor: Float = 1e-5, s: Float = 0.73, beta: Float = 0.41, eta: Float = 0.013
        let u = Self.values(k, floor: floor, seed: UInt64(k))
        var rng = SeededRandom(seed: 99)
        let hp = (0..<k).map { i in i % 5 == 0 ? floor * 0.9 : rng.uniform() }
        // The scalar reference, exactly the loops FISTAInference had.
        var refH = [Float](repeating: 0, count: k), refZ = refH, refAlive = 0, refMax = -Float.infinity
        for j in 0..<k { refAlive += u[j] >= floor ? 1 : 0; refH[j] = max(u[j], floor); refMax = max(refMax, refH[j]) }
        let h0 = floor * s, cst = h0 + beta * (h0 - floor * 0.9)
        var refIdx = [Int32](), refVal = [Float]()
        for j in 0..<k {
            let h = refH[j] * s
            refH[j] = h
            refZ[j] = h + beta * (h - hp[j])
            if refZ[j] != cst { refIdx.append(Int32(j)); refVal.append(-eta * (refZ[j] - cst)) }
        }
        #expect(refIdx.count < k && !refIdx.isEmpty, "the case must list some entries and skip others")
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var hc = [Float](repeating: .nan, count: k), z = hc
            var idx = [Int32](repeating: -1, count: k), val = [Float](repeating: .nan, count: k)
            let (alive, mx) = u.withUnsafeBufferPointer { FISTARowKernels.clamp(k: k, u: $0.baseAddress!, floor: floor, into: &hc) }
            #expect(alive == refAlive && mx == refMax, "\(level)")
            let cnt = hp.withUnsafeBufferPointer { hpp in
                FISTARowKernels.momentum(k: k, hc: &hc, hp: hpp.baseAddress!, scale: s, beta: beta, constant: cst, negEta: -eta,
                                         zNext: &z, indices: &idx, values: &val)
            }
            #expect(hc == refH && z == refZ, "\(level)")
            #expect(cnt == refIdx.count && Array(idx[0..<cnt]) == refIdx && Array(val[0..<cnt]) == refVal, "\(level)")
            // Without lists: the same values, nothing listed.
            var hc2 = [Float](repeating: 0, count: k), z2 = hc2
            _ = u.withUnsafeBufferPointer { FISTARowKernels.clamp(k: k, u: $0.baseAddress!, floor: floor, into: &hc2) }
            let none = hp.withUnsafeBufferPointer { hpp in
                FISTARowKernels.momentum(k: k, hc: &hc2, hp: hpp.baseAddress!, scale: s, beta: beta, constant: cst, negEta: -eta,
                                         zNext: &z2, indices: nil, values: nil)
            }
            #expect(none == 0 && z2 == refZ)
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }

    @Test(arguments: [1, 9, 16, 37, 300])
    func adjointPassMatchesTheScalarLoop(_ k: Int) {
        let floor: Float = 1e-5, s: Float = 0.81, c1: Float = 1.37, c2: Float = -0.29, eta: Float = 0.021
        let ub = Self.values(k, floor: floor, seed: UInt64(50 + k))
        var rng = SeededRandom(seed: 7)
        let zb1 = (0..<k).map { _ in rng.uniform() * 2 - 1 }, zb2 = (0..<k).map { _ in rng.uniform() * 2 - 1 }
        let g = (0..<k).map { _ in rng.uniform() - 0.5 }, bb = (0..<k).map { _ in rng.uniform() }
        for withG in [false, true] {
            var rUb = ub, rZb2 = zb2, rBb = bb, rIdx = [Int32](), rVal = [Float]()
            for j in 0..<k {
                var hbar = c1 * zb1[j] + c2 * zb2[j]
                if withG { hbar += g[j] }
                let alive = ub[j] >= floor
                let ubar = alive ? hbar * s : 0
                rUb[j] = ubar; rBb[j] += ubar; rZb2[j] = ubar
                if alive { rIdx.append(Int32(j)); rVal.append(-eta * ubar) }
            }
            for level in levels() {
                SparseRowKernels.setVectorLevel(level)
                var u = ub, z2 = zb2, b = bb, idx = [Int32](repeating: -1, count: k), val = [Float](repeating: .nan, count: k)
                let cnt = zb1.withUnsafeBufferPointer { z1 in g.withUnsafeBufferPointer { gp in
                    FISTARowKernels.adjoint(k: k, zb1: z1.baseAddress!, zb2: &z2, g: withG ? gp.baseAddress! : nil, c1: c1, c2: c2,
                                            ub: &u, floor: floor, scale: s, bb: &b, negEta: -eta, indices: &idx, values: &val)
                } }
                #expect(u == rUb && z2 == rZb2 && b == rBb, "\(level) g \(withG)")
                #expect(cnt == rIdx.count && Array(idx[0..<cnt]) == rIdx && Array(val[0..<cnt]) == rVal, "\(level) g \(withG)")
            }
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }

    @Test(arguments: [3, 8, 301])
    func affinePassMatchesTheScalarLoop(_ k: Int) {
        var rng = SeededRandom(seed: UInt64(k))
        let z = (0..<k).map { _ in rng.uniform() }, e = (0..<k).map { _ in rng.uniform() - 0.5 }
        let col = (0..<k).map { _ in rng.uniform() * 3 }, cr: Float = -0.0173
        let want = (0..<k).map { z[$0] + e[$0] + cr * col[$0] }
        for level in levels() {
            SparseRowKernels.setVectorLevel(level)
            var u = [Float](repeating: .nan, count: k)
            FISTARowKernels.affine(k: k, z: z, e: e, cr: cr, colSum: col, into: &u)
            #expect(u == want, "\(level)")
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }
}
