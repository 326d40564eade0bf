// ByteClasses: RFC 9110 character classes as lookup tables, for the parser's validation.

enum ByteClasses {
    /// tchar: token characters (RFC 9110 §5.6.2).
    static let token: [Bool] = (0..<256).map { b in
        if b >= 0x30 && b <= 0x39 { return true }
        if (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) { return true }
        return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(b))
    }

    /// field-vchar, SP and HTAB: bytes allowed in a field value (obs-text included).
    static let fieldValue: [Bool] = (0..<256).map { b in b == 0x09 || (b >= 0x20 && b != 0x7F) }

    /// Visible ASCII allowed in a request target (no controls, space, '#' or obs-text).
    static let target: [Bool] = (0..<256).map { b in b > 0x20 && b < 0x7F && b != 0x23 }

    /// The value of a hex digit, or nil.
    @inline(__always) static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: return Int(b - 0x30)
        case 0x41...0x46: return Int(b - 0x41 + 10)
        case 0x61...0x66: return Int(b - 0x61 + 10)
        default: return nil
        }
    }
}
