import Foundation
import Testing
@testable import Linalg
@testable import PFC

@Suite struct ModelFileTests {
    func sample(_ kind: ModelKind) -> any Network {
        NetworkFactory.make(Architecture(kind: kind, inputDim: 12, outputDim: 3, basis: 7, iterations: 5), seed: 5)
    }

    @Test(arguments: ModelKind.allCases)
    func roundTripIsBitExact(kind: ModelKind) throws {
        let net = sample(kind)
        let bytes = ModelFile.encode(net)
        let back = try ModelFile.decode(bytes)
        #expect(back.architecture == net.architecture)
        #expect(back.parameters.map { $0.value.storage.map(\.bitPattern) } == net.parameters.map { $0.value.storage.map(\.bitPattern) })
        #expect(ModelFile.encode(back) == bytes)
        // And through a file on disk.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(kind).pfc").path
        try ModelFile.write(net, to: path)
        #expect(ModelFile.encode(try ModelFile.read(path: path)) == bytes)
        let x = Matrix(rows: 12, cols: 2, repeating: 0.5)
        #expect(back.predict(x) == net.predict(x))
    }

    @Test func everyFlippedByteIsRejected() {
        let bytes = ModelFile.encode(sample(.pfc))
        // Every position: magic, version, JSON, shapes, weights and the checksum itself.
        for i in stride(from: 0, to: bytes.count, by: 1) {
            var bad = bytes
            bad[i] ^= 0x10
            #expect(throws: ModelFileError.self, "flipped byte \(i) was accepted") { try ModelFile.decode(bad) }
        }
        var weight = bytes
        weight[bytes.count - 10] ^= 0x01
        #expect(throws: ModelFileError.checksumMismatch) { try ModelFile.decode(weight) }
        var magic = bytes
        magic[0] = UInt8(ascii: "X")
        #expect(throws: ModelFileError.notAModelFile) { try ModelFile.decode(magic) }
    }

    @Test func truncatedFilesAreRejected() {
        let bytes = ModelFile.encode(sample(.pfc2))
        for cut in [0, 3, 8, 12, 40, bytes.count / 2, bytes.count - 5, bytes.count - 1] {
            let short = Array(bytes.prefix(cut))
            #expect(throws: ModelFileError.truncated, "cut at \(cut)") { try ModelFile.decode(short) }
        }
    }

    @Test func foreignFilesAreRejected() {
        #expect(throws: ModelFileError.notAModelFile) { try ModelFile.decode(Array("label,p0\n1,0.5\n".utf8)) }
        var future = ModelFile.encode(sample(.mlp))
        future[8] = 9 // format version 9
        #expect(throws: ModelFileError.self) { try ModelFile.decode(future) }
    }

    /// The weight count the limits use is the count a network of that architecture really has.
    @Test(arguments: ModelKind.allCases)
    func parameterCountMatchesTheNetwork(kind: ModelKind) {
        var arch = Architecture(kind: kind, inputDim: 12, outputDim: 3, basis: 7, iterations: 5)
        if kind.isSequence { arch.sequenceLength = 4 }
        let net = NetworkFactory.make(arch, seed: 1)
        #expect(arch.parameterCount == net.parameters.reduce(0) { $0 + $1.value.count })
        arch.basis = Int.max / 2
        #expect(arch.parameterCount == nil)
    }

    /// A well-formed file whose architecture names far more weights than it holds (K = 10⁹, or a
    /// sequence length of 0) is refused before anything that large is allocated (found by fuzzing).
    @Test(arguments: [#""basis":1000000000"#, #""input_dim":2000000000"#])
    func architectureIsCheckedAgainstTheWeightsItHolds(change: String) throws {
        let net = sample(.pfc)
        let bytes = ModelFile.encode(net)
        let start = ModelFile.magic.count + 8
        let length = Int(UInt32(bytes[start - 4]) | UInt32(bytes[start - 3]) << 8 | UInt32(bytes[start - 2]) << 16 | UInt32(bytes[start - 1]) << 24)
        var json = String(decoding: bytes[start..<(start + length)], as: UTF8.self)
        let key = String(change.split(separator: ":")[0])
        json = json.replacingOccurrences(of: key + #":\d+"#, with: change, options: .regularExpression)
        #expect(json.contains(change))
        var out = Array(bytes[0..<(start - 4)])
        let n = UInt32(json.utf8.count)
        out += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        out += Array(json.utf8) + bytes[(start + length)..<(bytes.count - 4)]
        let crc = CRC32.checksum(out[...])
        out += [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        #expect(throws: ModelFileError.self) { try ModelFile.decode(out) }
    }
}
