// SeededRandom.sample: count distinct numbers of 0..<n, deterministic per seed, in O(count) memory
// (a handler samples baseline rows of datasets with hundreds of millions of rows).
import Testing
@testable import Linalg

@Suite struct SeededRandomSampleTests {
    @Test func samplesAreDistinctInRangeAndReproducible() {
        for (n, count) in [(0, 5), (1, 1), (10, 10), (10, 3), (1000, 999), (1_000_000_000, 512)] {
            var a = SeededRandom(seed: 7), b = SeededRandom(seed: 7)
            let s = a.sample(n, count: count)
            #expect(s.count == min(n, count))
            #expect(Set(s).count == s.count && s.allSatisfy { (0..<n).contains($0) })
            #expect(b.sample(n, count: count) == s)
        }
        // All of 0..<n when count is n: a permutation.
        var r = SeededRandom(seed: 3)
        #expect(r.sample(50, count: 50).sorted() == Array(0..<50))
        // Every row equally likely: 20 000 draws of 3 of 6 rows put each row in about half of them.
        var hits = [Int](repeating: 0, count: 6)
        var g = SeededRandom(seed: 11)
        for _ in 0..<20_000 { for i in g.sample(6, count: 3) { hits[i] += 1 } }
        #expect(hits.allSatisfy { abs($0 - 10_000) < 400 }, "\(hits)")
        // Negative or oversized counts are clamped, never a trap.
        var z = SeededRandom(seed: 1)
        #expect(z.sample(5, count: -3).isEmpty && z.sample(5, count: .max).count == 5)
    }
}
