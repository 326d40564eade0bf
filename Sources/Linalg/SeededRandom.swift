// SeededRandom: a small, fast, reproducible random number generator (xoshiro256**).

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64), so a training run
/// with the same seed is reproducible bit for bit.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator whose whole stream is determined by `seed`.
    public init(seed: UInt64) {
        var sm = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&sm); s1 = splitMix(&sm); s2 = splitMix(&sm); s3 = splitMix(&sm)
    }

    /// The generator's four state words, to checkpoint it: `SeededRandom(state:)` continues the
    /// same stream from here.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator continuing from `state` (the four words `state` returned); nil for another count
    /// or all zeros (xoshiro's one forbidden state).
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3]
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        var u1 = uniform()
        while u1 <= .leastNormalMagnitude { u1 = uniform() }
        let u2 = uniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }

    /// A matrix with elements uniform in [low, high).
    public mutating func uniformMatrix(rows: Int, cols: Int, low: Float = 0, high: Float = 1) -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        for i in 0..<m.count { m.storage[i] = low + (high - low) * uniform() }
        return m
    }

    /// A seeded permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, Int(next() % UInt64(i + 1))) } }
        return p
    }

    /// `count` distinct numbers of 0..<n in random order (a Fisher–Yates shuffle stopped after
    /// `count` steps, its swaps kept in a dictionary): time and memory O(count), not O(n).
    public mutating func sample(_ n: Int, count: Int) -> [Int] {
        let k = max(0, min(count, n))
        var swapped: [Int: Int] = [:]
        swapped.reserveCapacity(2 * k)
        var out: [Int] = []
        out.reserveCapacity(k)
        for i in 0..<k {
            let j = i + Int(next() % UInt64(n - i))
            let atJ = swapped[j] ?? j
            out.append(atJ)
            swapped[j] = swapped[i] ?? i
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
