import Foundation
import Testing
@testable import Service

/// The predict answer's direct writer makes exactly the bytes `JSONCoding.apiEncoder` makes.
@Suite struct PredictJSONTests {
    static let awkward: [Float] = [0, -0.0, 1, -1, 0.1, 1e-5, 1.5e-7, 123456.79, 3.4028235e38, -3.4028235e38, 1.0e-45,
                                   1.17549435e-38, 16_777_216, 0.33333334, 2.5, 100, 1e10, -2.75e-3]

    static func sample(seed: UInt64, rows: Int, steps: Bool) -> PredictResponse {
        var state = seed
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let pick = Int(state >> 33) % (awkward.count + 4)
            if pick < awkward.count { return awkward[pick] }
            return Float(Int32(truncatingIfNeeded: state >> 20)) * (pick % 2 == 0 ? 1e-9 : 1e-4)
        }
        let outputs = (0..<rows).map { _ in (0..<10).map { _ in next() } }
        let explanations = (0..<rows).map { r in
            (0..<(r % 4)).map { j in ExplanationDTO(block: j % 2, component: 299 - j * 17, activation: next(), contribution: next()) }
        }
        return PredictResponse(modelVersion: Int(seed % 5), predictions: (0..<rows).map { ($0 * 7) % 10 }, outputs: outputs,
                               explanations: explanations,
                               stepPredictions: steps ? (0..<rows).map { r in (0..<8).map { (r + $0) % 10 } } : nil)
    }

    @Test func theWriterMakesTheEncodersBytes() throws {
        for seed in 0..<40 as Range<UInt64> {
            for rows in [0, 1, 3] {
                for steps in [false, true] {
                    let r = Self.sample(seed: seed, rows: rows, steps: steps)
                    let reference = try JSONCoding.apiEncoder.encode(r)
                    let ours = try #require(PredictJSON.encode(r))
                    #expect(ours == Array(reference), "\(String(decoding: ours, as: UTF8.self)) vs \(String(decoding: reference, as: UTF8.self))")
                }
            }
        }
    }

    @Test func aNonFiniteNumberIsRefusedAsTheEncoderRefusesIt() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var r = Self.sample(seed: 1, rows: 2, steps: false)
            r.outputs[1][3] = bad
            #expect(PredictJSON.encode(r) == nil)
            #expect((try? JSONCoding.apiEncoder.encode(r)) == nil)
            var e = Self.sample(seed: 2, rows: 3, steps: false)
            e.explanations[2][1].contribution = bad
            #expect(PredictJSON.encode(e) == nil)
        }
    }
}
