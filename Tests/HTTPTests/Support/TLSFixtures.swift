// TLSFixtures: self-signed certificates made at test time with the `openssl` CLI, and a runner for
// the external clients (curl, python3, openssl s_client) the TLS tests drive.

import Foundation
@testable import HTTP
import TestSupport

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A certificate and key on disk, with the SHA-256 of the certificate as `openssl x509` reports it.
struct TestCertificate {
    var certificatePath: String
    var keyPath: String
    var sha256: String

    var configuration: TLSConfiguration { TLSConfiguration(certificatePath: certificatePath, privateKeyPath: keyPath) }
}

enum TLSFixtures {
    /// A fresh temporary directory.
    static func makeDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pfc-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// A self-signed P-256 certificate for localhost and 127.0.0.1, written as `name`.pem / `name`-key.pem.
    static func selfSigned(in dir: String, name: String) throws -> TestCertificate {
        let cert = "\(dir)/\(name).pem", key = "\(dir)/\(name)-key.pem"
        let r = try run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        guard r.status == 0 else { throw TestClientError(description: "openssl req failed: \(r.stderr)") }
        return TestCertificate(certificatePath: cert, keyPath: key, sha256: try fingerprint(cert))
    }

    /// SHA-256 of a PEM certificate's DER form, lowercase hex without colons (from `openssl x509`).
    static func fingerprint(_ cert: String) throws -> String {
        let r = try run("openssl", ["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"])
        guard r.status == 0, let eq = r.stdout.firstIndex(of: "=") else { throw TestClientError(description: "openssl x509: \(r.stderr)") }
        return r.stdout[r.stdout.index(after: eq)...].trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: ":", with: "").lowercased()
    }

    /// Runs `tool` from PATH with a time limit; throws when it cannot start or overstays.
    static func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) throws -> ToolResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes while the tool runs, so a chatty tool never blocks on a full pipe.
        let outData = LockedData(), errData = LockedData()
        let readers = DispatchGroup()
        for (pipe, sink) in [(out, outData), (err, errData)] {
            readers.enter()
            DispatchQueue.global().async {
                sink.set(pipe.fileHandleForReading.readDataToEndOfFile())
                readers.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw TestClientError(description: "\(tool) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        readers.wait()
        return ToolResult(status: process.terminationStatus,
                          stdout: String(decoding: outData.get(), as: UTF8.self),
                          stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Runs a Python 3 program given as text, with `arguments` in sys.argv[1...].
    static func python(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
        try run("python3", ["-c", program] + arguments, environment: environment)
    }
}

/// Bytes handed from a reader thread to the test.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}
