// Element-wise kernels on Matrix, written as simple loops over contiguous buffers so the
// compiler vectorizes them in release builds.

extension Matrix {
    /// `self ← self + α·other`.
    public mutating func add(_ other: Matrix, scaledBy alpha: Float = 1) {
        precondition(rows == other.rows && cols == other.cols, "shape mismatch")
        storage.withUnsafeMutableBufferPointer { d in
            other.storage.withUnsafeBufferPointer { s in
                for i in 0..<d.count { d[i] += alpha * s[i] }
            }
        }
    }

    /// `self ← α·self`.
    public mutating func scale(by alpha: Float) {
        storage.withUnsafeMutableBufferPointer { d in for i in 0..<d.count { d[i] *= alpha } }
    }

    /// `self ← max(self, floor)` element-wise.
    public mutating func clampMin(_ floor: Float) {
        storage.withUnsafeMutableBufferPointer { d in for i in 0..<d.count { d[i] = Swift.max(d[i], floor) } }
    }

    /// Adds the vector `bias` (length `rows`) to every column.
    public mutating func addColumnVector(_ bias: [Float]) {
        precondition(bias.count == rows, "bias length \(bias.count) does not match \(rows) rows")
        let c = cols
        storage.withUnsafeMutableBufferPointer { d in
            for i in 0..<rows { let b = bias[i]; for j in 0..<c { d[i * c + j] += b } }
        }
    }

    /// Sums every row: a vector of length `rows`.
    public func rowSums() -> [Float] {
        var out = [Float](repeating: 0, count: rows)
        storage.withUnsafeBufferPointer { s in
            for i in 0..<rows { var acc: Float = 0; for j in 0..<cols { acc += s[i * cols + j] }; out[i] = acc }
        }
        return out
    }

    /// The maximum of every column: a vector of length `cols`.
    public func columnMaxima() -> [Float] {
        var out = [Float](repeating: -.infinity, count: cols)
        storage.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<rows { for j in 0..<cols { o[j] = Swift.max(o[j], s[i * cols + j]) } }
            }
        }
        return out
    }

    /// The index of the largest element of every column (first one on ties).
    public func columnArgmax() -> [Int] {
        var best = [Float](repeating: -.infinity, count: cols)
        var arg = [Int](repeating: 0, count: cols)
        for i in 0..<rows {
            for j in 0..<cols where storage[i * cols + j] > best[j] { best[j] = storage[i * cols + j]; arg[j] = i }
        }
        return arg
    }

    /// True when every element is finite.
    public var isFinite: Bool { storage.allSatisfy { $0.isFinite } }
}
