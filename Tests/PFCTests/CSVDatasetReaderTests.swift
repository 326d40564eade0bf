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
