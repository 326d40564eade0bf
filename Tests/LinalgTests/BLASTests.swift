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
