import Foundation
import Testing
@testable import Service

/// The one-pass predict body reader gives exactly what the general decoder gives, or defers to it.
@Suite struct PredictRequestParserTests {
    static func general(_ text: String) throws -> PredictBody {
        PredictBody(try JSONCoding.decode(PredictRequest.self, from: Data(text.utf8)))
    }

    static func same(_ a: PredictBody, _ b: PredictBody) -> Bool {
        a.version == b.version && a.top == b.top && a.everyStep == b.everyStep && a.nestedForm == nil && b.nestedForm == nil
            && a.inputs.count == b.inputs.count
            && zip(a.inputs, b.inputs).allSatisfy { x, y in x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern } }
    }

    @Test func numbersAreReadAsTheDecoderReadsThem() throws {
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        var texts: [String] = ["0", "-0", "0.0", "1", "16", "0.0627451", "1e-5", "1E+5", "2.5e3", "-7.25", "123456789012345",
                               "1234567890123456789012", "0.1000000000000000055511151231257827", "3.4028235e38", "3.5e38", "1e39",
                               "1.17549435e-38", "1e-40", "9007199254740993", "0.30000000000000004", "4.9406564584124654e-300",
                               "1e22", "1e23", "123e-22", "8.589973e9"]
        for _ in 0..<400 {
            let d = Double(bitPattern: next() >> 2) .truncatingRemainder(dividingBy: 1e6)
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: next()) & 0x7F7F_FFFF)
            texts += [String(d), String(format: "%.17g", d), String(format: "%.6f", d), String(f), String(format: "%.3e", Double(f)),
                      String(Int64(bitPattern: next()) >> Int(next() % 60))]
        }
        texts = texts.filter { !$0.contains("inf") && !$0.contains("nan") }
        for chunk in stride(from: 0, to: texts.count, by: 37).map({ Array(texts[$0..<min(texts.count, $0 + 37)]) }) {
            let body = "{\"inputs\": [[\(chunk.joined(separator: ","))], [ \(chunk.reversed().joined(separator: " , ")) ]], \"top\": 3}"
            let reference = try Self.general(body)
            let fast = try #require(PredictRequestParser.parse(Array(body.utf8)), "\(body)")
            #expect(Self.same(fast, reference), "\(chunk)")
        }
    }

    @Test func theCommonFormsAreReadInOnePass() throws {
        for body in [#"{"inputs":[[1,2,3]]}"#, #"{"top":7,"inputs":[[0.5],[0.25]],"version":2,"every_step":true}"#,
                     " \n{ \"every_step\" : false , \"inputs\" : [ [ ] , [1e2] ] , \"version\" : -1 }\t", #"{"inputs":[]}"#] {
            let fast = try #require(PredictRequestParser.parse(Array(body.utf8)), "\(body)")
            #expect(Self.same(fast, try Self.general(body)), "\(body)")
        }
    }

    @Test func everythingElseIsLeftToTheDecoder() {
        for body in ["", "[]", "{}", #"{"inputs":[[1]],"inputs":[[2]]}"#, #"{"inputs":[[1]],"extra":1}"#, #"{"inputs":[[[1,2]]]}"#,
                     #"{"inputs":[[1]],"top":null}"#, #"{"inputs":[[1]],"top":5.0}"#, #"{"inputs":[[1]],"top":1e2}"#,
                     #"{"\u0069nputs":[[1]]}"#, #"{"inputs":[[01]]}"#, #"{"inputs":[[1.]]}"#, #"{"inputs":[[.5]]}"#,
                     #"{"inputs":[[+1]]}"#, #"{"inputs":[[1e]]}"#, #"{"inputs":[[1e400]]}"#, #"{"inputs":[[1e-400]]}"#,
                     #"{"inputs":[[1,]]}"#, #"{"inputs":[[1]],}"#, #"{"inputs":[[1]]} x"#, #"{"inputs":[[1]]"#,
                     #"{"inputs":[[NaN]]}"#, #"{"inputs":[[1]],"version":99999999999999999999}"#,
                     #"{"inputs":[[1]],"every_step":"yes"}"#, #"{"inputs":[["1"]]}"#, #"{"Inputs":[[1]]}"#] {
            #expect(PredictRequestParser.parse(Array(body.utf8)) == nil, "\(body)")
        }
    }
}
