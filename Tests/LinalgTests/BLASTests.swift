import Testing
@testable import Linalg

@Suite struct BLASTests {
    /// Naive triple loop, the reference the BLAS products are checked against.
    func naive(_ a: Matrix, _ ta: Bool, _ b: Matrix, _ tb: Bool) -> Matrix {
        let a2 = ta ? a.transposed() : a, b2 = tb ? b.transposed() : b
        var c = Matrix(rows: a2.rows, cols: b2.cols)
        for i in 0..<a2.rows { for j in 0..<b2.cols {
            var s: Double = 0
            for k in 0..<a2.cols { s += Double(a2[i, k]) * Double(b2[k, j]) }
            c[i, j] = Float(s)
        } }
        return c
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func productMatchesNaiveLoop(_ t: (Bool, Bool)) {
        var rng = SeededRandom(seed: 7)
        let a = t.0 ? rng.uniformMatrix(rows: 5, cols: 7, low: -1) : rng.uniformMatrix(rows: 7, cols: 5, low: -1)
        let b = t.1 ? rng.uniformMatrix(rows: 3, cols: 5, low: -1) : rng.uniformMatrix(rows: 5, cols: 3, low: -1)
        let c = Matrix.product(a, b, transA: t.0 ? .transposed : .none, transB: t.1 ? .transposed : .none)
        let r = naive(a, t.0, b, t.1)
        #expect(c.rows == 7 && c.cols == 3)
        for i in 0..<c.count { #expect(abs(c.storage[i] - r.storage[i]) < 1e-5) }
    }

    /// Products with one output row or one output column go to sgemv (`BLAS.sgemmRaw`): every
    /// transpose combination, leading dimensions wider than the operands, α and β, and a C full of
    /// NaN that β = 0 must ignore, against the naive loop.
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func vectorShapedProductsMatchNaiveLoop(_ t: (Bool, Bool)) {
        var rng = SeededRandom(seed: 11)
        for (m, n) in [(1, 6), (6, 1), (1, 1)] {
            let k = 9, pad = 3
            let a = t.0 ? rng.uniformMatrix(rows: k, cols: m, low: -1) : rng.uniformMatrix(rows: m, cols: k, low: -1)
            let b = t.1 ? rng.uniformMatrix(rows: n, cols: k, low: -1) : rng.uniformMatrix(rows: k, cols: n, low: -1)
            let r = naive(a, t.0, b, t.1)
            // Operands stored with `pad` spare columns, C with its own.
            func padded(_ x: Matrix) -> [Float] { (0..<x.rows).flatMap { i in (0..<x.cols).map { x[i, $0] } + [Float](repeating: 7, count: pad) } }
            let pa = padded(a), pb = padded(b)
            for (alpha, beta) in [(Float(1), Float(0)), (2, 0.5)] {
                let ldc = n + pad
                var c = [Float](repeating: beta == 0 ? .nan : 1, count: m * ldc)
                BLAS.gemm(t.0 ? .transposed : .none, t.1 ? .transposed : .none, m: m, n: n, k: k, alpha: alpha,
                          a: pa, lda: a.cols + pad, b: pb, ldb: b.cols + pad, beta: beta, c: &c, ldc: ldc)
                for i in 0..<m { for j in 0..<n {
                    let want = alpha * r[i, j] + (beta == 0 ? 0 : beta)
                    #expect(abs(c[i * ldc + j] - want) < 1e-5, "m \(m) n \(n) α \(alpha) β \(beta) at \(i),\(j)")
                } }
                for i in 0..<m { for j in n..<ldc { #expect(c[i * ldc + j].isNaN == (beta == 0), "padding of C untouched") } }
            }
        }
    }

    @Test func accumulateProductUsesAlphaAndBeta() {
        let a = Matrix([[1, 2], [3, 4]]), b = Matrix([[5, 6], [7, 8]])
        var c = Matrix([[1, 1], [1, 1]])
        c.accumulateProduct(a, b, alpha: 2, beta: 3)
        #expect(c == Matrix([[41, 47], [89, 103]]))
    }

    @Test func seededRandomIsReproducibleAndUniform() {
        var r1 = SeededRandom(seed: 42), r2 = SeededRandom(seed: 42), r3 = SeededRandom(seed: 43)
        let a = (0..<1000).map { _ in r1.uniform() }
        #expect(a == (0..<1000).map { _ in r2.uniform() })
        #expect(a != (0..<1000).map { _ in r3.uniform() })
        #expect(a.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = a.reduce(0, +) / 1000
        #expect(abs(mean - 0.5) < 0.05)
        var r4 = SeededRandom(seed: 1)
        #expect(r4.permutation(50).sorted() == Array(0..<50))
    }

    @Test func threadsCanBeBounded() {
        // Restores the count it found: tests run in parallel and BLAS threads are process-wide.
        let before = BLAS.threads
        BLAS.setThreads(before)
        #expect(BLAS.threads == before)
    }
}
