// JSONText: the few bits of JSON the transport writes itself (error bodies), without Foundation.

enum JSONText {
    /// `s` as a JSON string literal, quotes included.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `{"error":{"code":…,"message":…}}`.
    static func errorBody(code: String, message: String) -> [UInt8] {
        Array("{\"error\":{\"code\":\(quoted(code)),\"message\":\(quoted(message))}}".utf8)
    }
}
