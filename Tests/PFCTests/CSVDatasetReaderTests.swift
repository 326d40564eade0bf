import Foundation
import Testing
@testable import PFC

@Suite struct CSVDatasetReaderTests {
    func parse(_ text: String, _ rules: CSVDatasetReader.Rules = .init()) throws -> LabeledDataset {
        try CSVDatasetReader.parse(Data(text.utf8), source: "t.csv", rules: rules)
    }

    func failure(_ text: String, _ rules: CSVDatasetReader.Rules = .init()) -> DatasetError? {
        do { _ = try parse(text, rules); return nil } catch let e as DatasetError { return e } catch { return nil }
    }

    /// A line longer than 16 MiB is refused as it arrives, whether it comes in many chunks (its bytes
    /// would pile up in the carry buffer) or in one; a line just under the limit still reads.
    @Test func aLineLongerThan16MiBIsRefused() throws {
        let field = Array("0,".utf8)
        let chunk = [UInt8](repeating: 0, count: 1 << 20).indices.map { field[$0 % 2] } // "0,0,0,…", 1 MiB
        var parser = CSVRowParser(source: "long.csv")
        var refused: DatasetError?
        var fed = 0
        do {
            while fed <= 17 {
                try chunk.withUnsafeBytes { try parser.consume($0, emit: { _, _, _ in Issue.record("no row may be emitted") }) }
                fed += 1
            }
        } catch let e as DatasetError { refused = e }
        #expect(refused?.reason.contains("longer than 16 MiB") == true && refused?.line == 1, "\(String(describing: refused))")
        #expect(fed == 16, "refused at the chunk that passed 16 MiB, after \(fed) whole chunks")
        var whole = [UInt8]("1,".utf8) + [UInt8](repeating: 0, count: (16 << 20) + 2).indices.map { field[$0 % 2] } + [0x30, 0x0A]
        #expect(failure(String(decoding: whole, as: UTF8.self))?.reason.contains("longer than 16 MiB") == true)
        whole = [UInt8]("1,".utf8) + [UInt8](repeating: 0, count: 1000).indices.map { field[$0 % 2] } + [0x30, 0x0A]
        #expect(try parse(String(decoding: whole, as: UTF8.self)).featureCount == 501)
    }

    @Test func readsRowsWithAndWithoutHeader() throws {
        let a = try parse("label,a,b\n1,0.5,0.25\n0,1,0\n")
        let b = try parse("1,0.5,0.25\r\n0,1,0\r\n\n")
        #expect(a == b)
        #expect(a.count == 2 && a.featureCount == 2 && a.classes == 2)
        #expect(a.labels == [1, 0] && a.features.storage == [0.5, 0.25, 1, 0])
    }

    @Test func raggedRowNamesItsLine() {
        let e = failure("label,a,b\n1,0.5,0.25\n0,1\n")
        #expect(e?.line == 3 && e?.reason.contains("ragged") == true)
    }

    @Test func nonNumberNamesLineAndColumn() {
        let e = failure("1,0.5,0.25\n0,1,abc\n")
        #expect(e?.line == 2 && e?.column == 3 && e?.reason.contains("abc") == true)
    }

    @Test(arguments: ["nan", "NaN", "inf", "-inf"])
    func nonFiniteIsRejected(value: String) {
        let e = failure("1,0.5,0.25\n0,\(value),0\n")
        #expect(e?.line == 2 && e?.column == 2 && e?.reason.contains("finite") == true)
    }

    @Test func negativeFeatureRejectedOnlyForNonNegativeModels() throws {
        let text = "1,0.5,0.25\n0,1,-0.5\n"
        let e = failure(text, .init(requireNonNegative: true))
        #expect(e?.line == 2 && e?.column == 3 && e?.reason.contains("negative") == true)
        #expect(try parse(text).features.storage.contains(-0.5))
    }

    @Test func labelsMustBeIntegersInRange() {
        #expect(failure("1.5,0.5\n")?.reason.contains("integer") == true)
        #expect(failure("-1,0.5\n")?.reason.contains("integer") == true)
        let e = failure("1,0.5\n0,0.1\n10,0.2\n", .init(classes: 10))
        #expect(e?.line == 3 && e?.reason.contains("out of range") == true)
        #expect(failure("x,y\n")?.reason.contains("no examples") == true)
        #expect(failure("1,0.5\n0,0.1\n", .init(featureCount: 3))?.line == 1)
    }

    @Test func digitsFixtureLoads() throws {
        let d = try CSVDatasetReader.read(path: Fixtures.digitsTrain, rules: .init(requireNonNegative: true))
        #expect(d.count == 1438 && d.featureCount == 64 && d.classes == 10)
        #expect(d.features.storage.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}

/// Paths of the committed fixtures.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let digitsTrain = directory.appendingPathComponent("digits_train.csv").path
    static let digitsTest = directory.appendingPathComponent("digits_test.csv").path
}

/// The byte-level incremental reader: chunk boundaries never change what is read, and its fast
/// decimal path reads every number exactly as `Float(String)` does.
@Suite struct CSVRowParserTests {
    func rows(_ bytes: [UInt8], cuts: [Int]) throws -> (labels: [Int], features: [Float], lines: [Int]) {
        var parser = CSVRowParser(source: "t.csv")
        var labels = [Int](), features = [Float](), lines = [Int]()
        let emit: (Int, UnsafeBufferPointer<Float>, Int) throws -> Void = { l, f, line in labels.append(l); features += f; lines.append(line) }
        var start = 0
        for cut in cuts.sorted() + [bytes.count] where cut >= start {
            try bytes[start..<cut].withUnsafeBytes { try parser.consume($0, emit: emit) }
            start = cut
        }
        try parser.finish(emit: emit)
        return (labels, features, lines)
    }

    @Test func chunkBoundariesDoNotMatter() throws {
        let text = "label,a,b\r\n1,0.5,0.25\r\n\r\n  0 , 1e-3,\t7\n2,-0,+3.5\r3,.5,5.\n4,1,2"
        let bytes = Array(text.utf8)
        let whole = try rows(bytes, cuts: [])
        #expect(whole.labels == [1, 0, 2, 3, 4])
        #expect(whole.features == [0.5, 0.25, 1e-3, 7, -0.0, 3.5, 0.5, 5, 1, 2])
        #expect(whole.lines == [2, 4, 5, 6, 7], "\\r\\n is one line break, \\r alone is one too")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let cuts = (0..<Int.random(in: 1...6, using: &rng)).map { _ in Int.random(in: 0...bytes.count, using: &rng) }
            let split = try rows(bytes, cuts: cuts)
            #expect(split.labels == whole.labels && split.features.map(\.bitPattern) == whole.features.map(\.bitPattern)
                    && split.lines == whole.lines, "cuts \(cuts)")
        }
        // Every cut position, including between \r and \n.
        for cut in 0...bytes.count { #expect(try rows(bytes, cuts: [cut]).lines == whole.lines, "cut \(cut)") }
    }

    @Test func fastDecimalsReadExactlyAsFloatDoes() {
        var rng = SystemRandomNumberGenerator()
        var checked = 0
        for _ in 0..<200_000 {
            let digits = Int.random(in: 1...9, using: &rng)
            var text = (0..<digits).map { _ in String(Int.random(in: 0...9, using: &rng)) }.joined()
            let point = Int.random(in: 0...digits, using: &rng)
            if point < digits { text.insert(".", at: text.index(text.startIndex, offsetBy: point)) }
            if Bool.random(using: &rng) { text += "e\(Int.random(in: -12...12, using: &rng))" }
            if Bool.random(using: &rng) { text = "-" + text }
            let bytes = Array(text.utf8)
            let fast = bytes.withUnsafeBufferPointer { CSVRowParser.float($0.baseAddress!, count: $0.count) }
            guard let fast else { continue }
            checked += 1
            #expect(fast.bitPattern == Float(text)!.bitPattern, "\(text): \(fast) vs \(Float(text)!)")
        }
        #expect(checked > 100_000, "the fast path must cover most short decimals")
        for odd in ["0x1p3", "inf", "1e", "1.2.3", "--1", "", ".", "1e+", "12345678901234567890"] {
            let bytes = Array(odd.utf8)
            let fast = bytes.withUnsafeBufferPointer { p in p.baseAddress.flatMap { CSVRowParser.float($0, count: p.count) } }
            #expect(fast == nil, "\(odd) must go to the slow path")
        }
    }
}
