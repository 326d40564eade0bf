// HTTPHeaders: an ordered list of header fields with case-insensitive lookup; repeats are kept.

/// Header fields of a request or response: ordered, repeated names kept, names compared case-insensitively.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// One header field as it appeared on the wire (name case preserved).
    public struct Field: Sendable, Equatable {
        /// The field name, case preserved.
        public var name: String
        /// The field value, without surrounding whitespace.
        public var value: String
        /// Makes a field.
        public init(name: String, value: String) { self.name = name; self.value = value }
    }

    private var fields: [Field]

    /// An empty header list.
    public init() { fields = [] }

    /// Makes headers from (name, value) pairs, in order.
    public init(_ pairs: [(String, String)]) { fields = pairs.map { Field(name: $0.0, value: $0.1) } }

    /// Makes headers from a dictionary literal, in source order.
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// The number of fields, repeats counted.
    public var count: Int { fields.count }

    /// Appends a field, keeping any existing field of the same name.
    public mutating func add(name: String, value: String) { fields.append(Field(name: name, value: value)) }

    /// Replaces every field named `name` with one field (or removes them when `value` is nil).
    public mutating func replaceOrAdd(name: String, value: String?) {
        remove(name: name)
        if let value { fields.append(Field(name: name, value: value)) }
    }

    /// Removes every field named `name`.
    public mutating func remove(name: String) { fields.removeAll { Self.equalsIgnoringCase($0.name, name) } }

    /// The first value of `name`, if any.
    public subscript(name: String) -> String? { fields.first { Self.equalsIgnoringCase($0.name, name) }?.value }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// Every comma-separated token of every `name` field, trimmed and lowercased (for Connection, Transfer-Encoding).
    public func tokens(_ name: String) -> [String] {
        values(name).flatMap { value in
            value.split(separator: ",").map { $0.trimmingASCIIWhitespace().lowercasedASCII() }.filter { !$0.isEmpty }
        }
    }

    /// True when a field named `name` exists.
    public func contains(_ name: String) -> Bool { fields.contains { Self.equalsIgnoringCase($0.name, name) } }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// ASCII case-insensitive comparison of two header names.
    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }  // O(1) for native strings: most names differ here
        var ia = a.utf8.makeIterator(), ib = b.utf8.makeIterator()
        while true {
            switch (ia.next(), ib.next()) {
            case (nil, nil): return true
            case let (x?, y?): if x != y && asciiLower(x) != asciiLower(y) { return false }
            default: return false
            }
        }
    }
}

@inline(__always) func asciiLower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }

extension StringProtocol {
    /// The string without leading and trailing spaces and tabs.
    func trimmingASCIIWhitespace() -> String {
        let u = Array(utf8)
        var lo = 0, hi = u.count
        while lo < hi, u[lo] == 32 || u[lo] == 9 { lo += 1 }
        while hi > lo, u[hi - 1] == 32 || u[hi - 1] == 9 { hi -= 1 }
        return String(decoding: u[lo..<hi], as: UTF8.self)
    }

    /// The string with ASCII letters lowercased.
    func lowercasedASCII() -> String { String(decoding: utf8.map(asciiLower), as: UTF8.self) }
}
