// pfc-fuzz: the libFuzzer targets of the service's input handling (Fuzz/README.md).
//
// Built by scripts/fuzz.sh (`swift build --sanitize=fuzzer -Xswiftc -DPFC_FUZZING`) this is a
// libFuzzer binary: libFuzzer's main runs, and the target is chosen by `--target=<name>` (libFuzzer
// ignores flags with two dashes and passes them on to -fork/-jobs children) or PFC_FUZZ_TARGET:
//
//   .build-fuzz/debug/pfc-fuzz --target=csv corpus/ -max_total_time=60
//
// Built by a plain `swift build` (the test suite builds every target) it replays the files and
// directories it is given through the same target, so a saved input can be checked without the
// fuzzer runtime:  .build/debug/pfc-fuzz csv Fuzz/corpus/csv
import Foundation
import PFC
import Service

enum PFCFuzz {
    nonisolated(unsafe) static var selected: @Sendable ([UInt8]) -> Void = { _ in }

    /// Every target: what each covers is in Fuzz/README.md.
    static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "csv": { data in
            FuzzSurface.datasetUpload(contentType: "text/csv", data)
            FuzzSurface.csvReader(data)
        },
        "ndjson": { data in FuzzSurface.datasetUpload(contentType: "application/x-ndjson", data) },
        "dataset-json": { data in FuzzSurface.datasetUpload(contentType: "application/json", data) },
        "request": { data in
            guard let kind = data.first else { return }
            FuzzSurface.jsonRequest(kind: Int(kind), Array(data.dropFirst()), examples: Int(kind >> 3) * 997 + 1)
        },
        "query": { data in FuzzSurface.queryParameters(data) },
        "model-file": { data in
            guard let first = data.first else { return }
            FuzzSurface.modelFile(Array(data.dropFirst()), fixChecksum: first & 1 == 0)
        },
        "routes": { data in RoutesTarget.shared.run(data) },
    ]

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: pfc-fuzz <\(targets.keys.sorted().joined(separator: "|"))> [inputs…] (or --target=<name>)\n".utf8))
        exit(2)
    }

    /// Writes one small model file of every kind into `directory` (the model-file seed corpus), each
    /// behind the target's selector byte 0 (checksum rewritten).
    static func writeModelSeeds(_ directory: String) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for kind in ModelKind.allCases {
            var arch = Architecture(kind: kind, inputDim: 4, outputDim: 3, basis: 5, iterations: 3, nonnegative: kind != .mlp)
            if kind.isSequence { arch.sequenceLength = 2 }
            let bytes = [0] + ModelFile.encode(NetworkFactory.make(arch, seed: 1))
            _ = FileManager.default.createFile(atPath: (directory as NSString).appendingPathComponent(kind.rawValue), contents: Data(bytes))
        }
    }

    /// The target named by `--target=`, a first argument (replay mode), or PFC_FUZZ_TARGET.
    static func select(_ arguments: [String]) -> (String, [String]) {
        var rest = Array(arguments.dropFirst())
        if let seeds = rest.first(where: { $0.hasPrefix("--write-model-seeds=") }) {
            writeModelSeeds(String(seeds.dropFirst("--write-model-seeds=".count)))
            exit(0)
        }
        var name = ProcessInfo.processInfo.environment["PFC_FUZZ_TARGET"]
        if let i = rest.firstIndex(where: { $0.hasPrefix("--target=") }) {
            name = String(rest.remove(at: i).dropFirst("--target=".count))
        } else if let first = rest.first, targets[first] != nil {
            name = rest.removeFirst()
        }
        guard let name, let target = targets[name] else { usage() }
        selected = target
        return (name, rest)
    }

    /// Replays every file given and every file in every directory given.
    static func replay(_ arguments: [String]) {
        let (name, rest) = select(arguments)
        var files: [String] = []
        for path in rest where !path.hasPrefix("-") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { usage() }
            if isDirectory.boolValue {
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += entries.sorted().filter { !$0.hasPrefix(".") }.map { (path as NSString).appendingPathComponent($0) }
            } else {
                files.append(path)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            selected(Array(data))
        }
        print("pfc-fuzz \(name): replayed \(files.count) input(s) without a crash")
    }
}

#if PFC_FUZZING
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee?[$0].map { String(cString: $0) } }
    _ = PFCFuzz.select(arguments)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    PFCFuzz.selected(size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
enum Replay {
    static func main() { PFCFuzz.replay(CommandLine.arguments) }
}
#endif
