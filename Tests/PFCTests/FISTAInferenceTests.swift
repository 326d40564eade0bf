import Testing
@testable import Linalg
@testable import PFC

@Suite struct FISTAInferenceTests {
    @Test func identityDictionaryRecoversTheInputInOneStep() {
        // W = I: λmax = 1, η = 1, so U = Z − (Z − x) = x and h = max(x, floor) from the first step on.
        var w = Matrix(rows: 4, cols: 4)
        for i in 0..<4 { w[i, i] = 1 }
        let x = Matrix([[0.5, 0], [0.25, 1], [0, 0.75], [1, 0.5]])
        for n in [1, 5, 40] {
            let (hT, _) = FISTAInference.forward(wx: w, x: x, settings: FISTASettings(iterations: n), keepTape: false)
            for b in 0..<2 { for k in 0..<4 { #expect(abs(hT[b, k] - max(x[k, b], 1e-5)) < 1e-6) } }
        }
    }

    @Test func reconstructionErrorFallsWithIterationsAndCodesStayFeasible() {
        var rng = SeededRandom(seed: 21)
        let w = rng.uniformMatrix(rows: 20, cols: 8)
        let hTrue = rng.uniformMatrix(rows: 8, cols: 5)
        let x = Matrix.product(w, hTrue)
        var errors = [Double]()
        for n in [2, 10, 100, 400] {
            let (hT, _) = FISTAInference.forward(wx: w, x: x, settings: FISTASettings(iterations: n, normalizeColumns: false), keepTape: false)
            #expect(hT.storage.allSatisfy { $0 >= 1e-5 })
            var r = Matrix.product(w, hT, transB: .transposed)
            r.add(x, scaledBy: -1)
            errors.append(r.squaredNorm / x.squaredNorm)
        }
        #expect(errors[0] > errors[1] && errors[1] > errors[2] && errors[2] >= errors[3])
        #expect(errors[3] < 1e-3, "relative error \(errors)")
    }

    @Test func normalisationCapsEachExamplesMaximumAtTheInputsMaximum() {
        var rng = SeededRandom(seed: 2)
        let w = rng.uniformMatrix(rows: 10, cols: 6, low: 0, high: 0.01) // tiny W: unscaled h would be ≫ x
        let x = rng.uniformMatrix(rows: 10, cols: 4)
        let (hT, tape) = FISTAInference.forward(wx: w, x: x, settings: FISTASettings(iterations: 30), keepTape: true)
        let xMax = x.columnMaxima()
        for b in 0..<4 { #expect(hT.row(b).max()! <= xMax[b] * (1 + 1e-5)) }
        #expect(tape!.scales.contains { $0 < 1 })
    }

    @Test func powerIterationFindsTheLargestEigenvalue() {
        // diag(1, 5, 2) rotated is still symmetric PSD with λmax = 5.
        let a: [Float] = [1, 0, 0, 0, 5, 0, 0, 0, 2]
        let l = a.withUnsafeBufferPointer { PowerIteration.largestEigenvalue(of: $0.baseAddress!, k: 3, iterations: 200, tolerance: 1e-7) }
        #expect(abs(l - 5) < 1e-3)
    }
}

@Suite struct ChunkedInferenceTests {
    @Test(arguments: [2, 3])
    func chunkedInferenceAndGradientMatchOneChunk(threads: Int) {
        var rng = SeededRandom(seed: 8)
        let wx = rng.uniformMatrix(rows: 30, cols: 12, low: 0, high: 0.3)
        let x = rng.uniformMatrix(rows: 30, cols: 50)
        let g = rng.uniformMatrix(rows: 50, cols: 12, low: -1, high: 1)
        let s = FISTASettings(iterations: 20)
        var (h1, t1) = FISTAInference.forward(wx: wx, x: x, settings: s, keepTape: true, threads: 1)
        var (hN, tN) = FISTAInference.forward(wx: wx, x: x, settings: s, keepTape: true, threads: threads)
        #expect(tN!.chunks.count == threads)
        for i in 0..<h1.count { #expect(abs(h1.storage[i] - hN.storage[i]) <= 1e-5 * max(1, abs(h1.storage[i]))) }
        let b1 = FISTAInference.backward(tape: &t1!, wx: wx, x: x, gradHT: g, settings: s)
        let bN = FISTAInference.backward(tape: &tN!, wx: wx, x: x, gradHT: g, settings: s)
        func close(_ a: Matrix, _ b: Matrix) -> Bool {
            let scale = a.storage.map(abs).max()!
            return zip(a.storage, b.storage).allSatisfy { abs($0 - $1) <= 1e-4 * scale }
        }
        #expect(close(b1.gradWx, bN.gradWx))
        #expect(close(b1.gradX, bN.gradX))
        h1 = hN // silence "never mutated"
    }
}
