// ImageShape: the [height, width] of image data sets and component PNGs, parsed and checked in
// one place (a product that overflowed Int used to abort the process).
import Foundation
import Linalg

enum ImageShape {
    /// Parses "h,w" (or "hxw") from a query parameter named `name`; 422 naming it when malformed.
    static func parse(query text: String, name: String) throws -> [Int] {
        let parts = text.split(whereSeparator: { $0 == "," || $0 == "x" }).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let h = parts[0], let w = parts[1] else {
            throw APIError.invalid("\(name) must be two positive integers like 28,28")
        }
        return [h, w]
    }

    /// The shape when it is two positive sides whose product (computed without overflow) is
    /// `features`; otherwise 422 naming `name`.
    static func validate(_ shape: [Int], features: Int, name: String) throws -> [Int] {
        guard shape.count == 2, shape.allSatisfy({ $0 >= 1 }) else {
            throw APIError.invalid("\(name) must be [height, width] of positive integers")
        }
        let (product, overflow) = shape[0].multipliedReportingOverflow(by: shape[1])
        guard !overflow, product == features else {
            throw APIError.invalid("\(name) \(shape[0])×\(shape[1]) does not match the \(features) features")
        }
        return shape
    }

    /// A shape kept in stored metrics (`image_shape`), when it reads as two whole positive numbers.
    static func stored(_ value: JSONValue?) -> [Int]? {
        guard case .array(let a)? = value, a.count == 2 else { return nil }
        let sides = a.compactMap { v -> Int? in
            if case .number(let n) = v { return CheckedSize.integer(n, in: 1...Int(Int32.max)) } else { return nil }
        }
        return sides.count == 2 ? sides : nil
    }
}
