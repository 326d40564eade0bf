// StrictJSON: what Foundation's JSONDecoder lets through or reports badly. It accepts a repeated
// key (the first wins), invalid UTF-8 inside strings it skips, and it reports a number that does
// not fit its field (1e308 or 1.5 for an Int, 1e39 for a Float) as "not valid JSON" with no field.
// One pass over the bytes catches the first two; `numberMisfit` names the field for the third.
import Foundation

enum StrictJSON {
    /// A problem found in well-formed-looking JSON.
    struct Problem: Error { let message: String }

    /// Refuses invalid UTF-8 and repeated keys (the path of the first repeat is named). Malformed
    /// syntax is left to the decoder, which reports it with its position.
    static func check(_ data: Data) throws(Problem) {
        guard String(data: data, encoding: .utf8) != nil else {
            throw Problem(message: "the body is not valid UTF-8")
        }
        var scanner = Scanner(bytes: [UInt8](data))
        if let repeated = scanner.firstRepeatedKey() { throw Problem(message: "field '\(repeated)' appears more than once") }
    }

    /// The largest body `numberMisfit` searches (each candidate is decoded again).
    static let defaultMaxSearchBytes = 4 << 20

    /// After the decoder failed with a root-level "not valid JSON" on a body that is valid JSON:
    /// the path and text of the number that does not fit its field, found by replacing number
    /// tokens with 0 (a binary search over them, at most about 25 decodes), or nil when that is not
    /// the cause or the body is too large to search (`maxSearchBytes`).
    static func numberMisfit(_ data: Data, stillFails: (Data) -> Bool, maxSearchBytes: Int = defaultMaxSearchBytes) -> (path: String, text: String)? {
        guard data.count <= maxSearchBytes else { return nil }
        let bytes = [UInt8](data)
        var scanner = Scanner(bytes: bytes)
        let numbers = scanner.numberTokens().filter { r in
            // Small non-negative integer literals fit every numeric field the API has.
            !(r.count <= 9 && bytes[r].allSatisfy { $0 >= 0x30 && $0 <= 0x39 })
        }
        func replacing(_ count: Int) -> Data {
            var out = [UInt8]()
            out.reserveCapacity(bytes.count)
            var at = 0
            for r in numbers.prefix(count) {
                out += bytes[at..<r.lowerBound]
                out.append(0x30)
                at = r.upperBound
            }
            out += bytes[at...]
            return Data(out)
        }
        guard !numbers.isEmpty, !stillFails(replacing(numbers.count)) else { return nil }
        // The smallest prefix whose replacement fixes the body ends at the last misfit.
        var lo = 0, hi = numbers.count  // fails with lo replaced, passes with hi replaced
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if stillFails(replacing(mid)) { lo = mid } else { hi = mid }
        }
        let token = numbers[hi - 1]
        var pathScanner = Scanner(bytes: bytes)
        let path = pathScanner.path(of: token.lowerBound) ?? ""
        return (path, String(decoding: bytes[token], as: UTF8.self))
    }

    /// A forgiving tokenizer: it never traps and stops at the first byte it does not expect.
    struct Scanner {
        let bytes: [UInt8]
        var i = 0
        init(bytes: [UInt8]) { self.bytes = bytes }

        private enum Frame { case object(keys: Set<String>, key: String?), array(index: Int) }
        private static let maxDepth = 512

        private mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        /// The string token at `i` (past its closing quote afterwards), unescaped; nil when unterminated.
        private mutating func string() -> String? {
            let start = i
            i += 1
            var escaped = false
            while i < bytes.count {
                let b = bytes[i]
                if b == 0x5C { escaped = true; i += 2; continue }
                if b == 0x22 {
                    i += 1
                    let raw = bytes[start..<i]
                    if !escaped { return String(decoding: raw.dropFirst().dropLast(), as: UTF8.self) }
                    return (try? JSONDecoder().decode(String.self, from: Data(raw))) ?? String(decoding: raw, as: UTF8.self)
                }
                i += 1
            }
            return nil
        }

        /// Walks the document, calling `visit` for every number token with the frame stack.
        private mutating func walk(_ visit: (Range<Int>, [Frame]) -> Bool) -> String? {
            var stack: [Frame] = []
            var expectingKey = false
            while true {
                skipSpace()
                guard i < bytes.count else { return nil }
                let b = bytes[i]
                switch b {
                case 0x7B: // {
                    guard stack.count < Self.maxDepth else { return nil }
                    stack.append(.object(keys: [], key: nil)); expectingKey = true; i += 1
                case 0x5B: // [
                    guard stack.count < Self.maxDepth else { return nil }
                    stack.append(.array(index: 0)); expectingKey = false; i += 1
                case 0x7D, 0x5D: // } ]
                    guard !stack.isEmpty else { return nil }
                    stack.removeLast(); expectingKey = false; i += 1
                case 0x3A: // :
                    expectingKey = false; i += 1
                case 0x2C: // ,
                    guard let top = stack.last else { return nil }
                    switch top {
                    case .array(let index): stack[stack.count - 1] = .array(index: index + 1); expectingKey = false
                    case .object: expectingKey = true
                    }
                    i += 1
                case 0x22: // "
                    guard let s = string() else { return nil }
                    if expectingKey, case .object(var keys, _)? = stack.last {
                        if !keys.insert(s).inserted {
                            stack[stack.count - 1] = .object(keys: keys, key: s)
                            return Self.pathText(stack)
                        }
                        stack[stack.count - 1] = .object(keys: keys, key: s)
                        expectingKey = false
                    }
                case 0x2D, 0x30...0x39: // number
                    let start = i
                    while i < bytes.count, (0x30...0x39).contains(bytes[i]) || bytes[i] == 0x2E || bytes[i] == 0x65
                            || bytes[i] == 0x45 || bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
                    if !visit(start..<i, stack) { return nil }
                case 0x74, 0x66, 0x6E: // true false null
                    while i < bytes.count, (0x61...0x7A).contains(bytes[i]) { i += 1 }
                default:
                    return nil
                }
            }
        }

        /// "a.b[2].c" for a stack of frames.
        private static func pathText(_ stack: [Frame]) -> String {
            stack.map { f -> String in
                switch f {
                case .object(_, let key): return "." + (key ?? "")
                case .array(let index): return "[\(index)]"
                }
            }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }

        /// The path of the first key repeated within one object, or nil.
        mutating func firstRepeatedKey() -> String? { walk { _, _ in true } }

        /// Every number token's byte range, in order.
        mutating func numberTokens() -> [Range<Int>] {
            var out: [Range<Int>] = []
            _ = walk { r, _ in out.append(r); return true }
            return out
        }

        /// The path of the number token starting at `offset`.
        mutating func path(of offset: Int) -> String? {
            var found: String?
            _ = walk { r, stack in
                guard r.lowerBound == offset else { return true }
                found = Self.pathText(stack)
                return false
            }
            return found
        }
    }
}
