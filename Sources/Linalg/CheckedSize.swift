// CheckedSize: size arithmetic on numbers that may come from a client (shapes, counts, costs),
// which must never trap: products and sums report overflow as nil.

/// Overflow-checked size arithmetic: nil when a product or sum leaves `Int`.
public enum CheckedSize {
    /// a·b·…, or nil on overflow (or a negative factor).
    public static func product(_ factors: Int...) -> Int? { product(factors) }

    public static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: f)
            if o { return nil }
            p = r
        }
        return p
    }

    /// a + b + …, or nil on overflow (or when a term is already nil).
    public static func sum(_ terms: Int?...) -> Int? { sum(terms) }

    public static func sum(_ terms: [Int?]) -> Int? {
        var s = 0
        for t in terms {
            guard let t else { return nil }
            let (r, o) = s.addingReportingOverflow(t)
            if o { return nil }
            s = r
        }
        return s
    }

    /// `Int(exactly:)` of a JSON number that must be a whole number in `range`.
    public static func integer(_ value: Double, in range: ClosedRange<Int>) -> Int? {
        guard value.isFinite, let n = Int(exactly: value), range.contains(n) else { return nil }
        return n
    }
}
