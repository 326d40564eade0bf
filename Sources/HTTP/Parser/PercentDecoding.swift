// PercentDecoding: decodes %HH escapes in paths and `name=value&…` query strings (RFC 3986).

enum PercentDecoding {
    /// Decodes `%HH` (and `+` as space when `plusIsSpace`); nil for a bad escape, NUL or invalid UTF-8.
    static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool = false) -> String? where C.Element == UInt8 {
        if !bytes.contains(0x25) && !(plusIsSpace && bytes.contains(0x2B)) {
            return String(validating: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == 0x25 {
                let h1 = bytes.index(after: i)
                guard h1 != bytes.endIndex else { return nil }
                let h2 = bytes.index(after: h1)
                guard h2 != bytes.endIndex, let hi = ByteClasses.hexValue(bytes[h1]),
                      let lo = ByteClasses.hexValue(bytes[h2]) else { return nil }
                let v = UInt8(hi * 16 + lo)
                if v == 0 { return nil }
                out.append(v)
                i = bytes.index(after: h2)
                continue
            }
            out.append(plusIsSpace && b == 0x2B ? 0x20 : b)
            i = bytes.index(after: i)
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Splits and decodes a query string; nil when any part is malformed.
    static func decodeQuery(_ bytes: ArraySlice<UInt8>) -> [QueryItem]? {
        var items: [QueryItem] = []
        for part in bytes.split(separator: 0x26, omittingEmptySubsequences: true) {
            let name: ArraySlice<UInt8>, value: ArraySlice<UInt8>
            if let eq = part.firstIndex(of: 0x3D) {
                name = part[part.startIndex..<eq]
                value = part[part.index(after: eq)...]
            } else {
                name = part
                value = []
            }
            guard let n = decode(name, plusIsSpace: true), let v = decode(value, plusIsSpace: true) else { return nil }
            items.append(QueryItem(name: n, value: v))
        }
        return items
    }
}
