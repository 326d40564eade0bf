// EmbedMigrations: a build-tool plugin that compiles `migrations/<dialect>/NNNN_name.sql` into the
// Storage module, so the binary carries its SQL (the Docker image copies only the binary) and a new
// migration is one new file: no generated file in git, no list to edit.
//
// Why not `.embedInCode`: SwiftPM's `PackageResources` has one static property per file and no list
// of them, so the Migrator could not find a file it was not told about by name.
import Foundation
import PackagePlugin

@main struct EmbedMigrations: BuildToolPlugin {
    /// One folder of `migrations/` per SQL dialect, each becoming `EmbeddedMigrations.<dialect>`.
    static let dialects = ["postgres", "sqlite"]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL.appending(path: "migrations")
        var swift = """
            // Generated at build time by Plugins/EmbedMigrations from migrations/*/NNNN_name.sql.

            /// The SQL of `migrations/`, compiled into the binary, in version order.
            enum EmbeddedMigrations {

            """
        for dialect in Self.dialects {
            swift += "    static let \(dialect): [Migration] = [\n"
            for file in try Self.migrationFiles(in: root.appending(path: dialect)) {
                swift += "        Migration(version: \(file.version), name: \(String(reflecting: file.name)), sql: \(String(reflecting: file.sql))),\n"
            }
            swift += "    ]\n"
        }
        swift += "}\n"

        // Written here rather than by a helper executable: a `swift build --sanitize=fuzzer` links every
        // package executable, build tools included, against libFuzzer's `main`. Rewritten only when it
        // changes, so an unchanged tree recompiles nothing; SwiftPM runs this on every build.
        let directory = context.pluginWorkDirectoryURL.appending(path: "Generated")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let output = directory.appending(path: "EmbeddedMigrations.swift")
        if (try? String(contentsOf: output, encoding: .utf8)) != swift {
            try swift.write(to: output, atomically: true, encoding: .utf8)
        }
        return [.prebuildCommand(displayName: "Embedding migrations/*/*.sql",
                                 executable: URL(fileURLWithPath: "/usr/bin/env"), arguments: ["true"],
                                 outputFilesDirectory: directory)]
    }

    /// The `NNNN_name.sql` files of one dialect, by version; anything else there fails the build.
    static func migrationFiles(in directory: URL) throws -> [(version: Int, name: String, sql: String)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }
        var files: [(version: Int, name: String, sql: String)] = []
        for fileName in names {
            guard fileName.hasSuffix(".sql"), let underscore = fileName.firstIndex(of: "_"),
                  fileName[..<underscore].allSatisfy({ "0"..."9" ~= $0 }),
                  let version = Int(fileName[..<underscore]), version > 0 else {
                throw PluginError("\(directory.path)/\(fileName): a migration is named NNNN_name.sql (version > 0)")
            }
            let name = String(fileName[fileName.index(after: underscore)...].dropLast(".sql".count))
            guard !name.isEmpty else { throw PluginError("\(directory.path)/\(fileName): the name after the version is empty") }
            if let other = files.first(where: { $0.version == version }) {
                throw PluginError("\(directory.path): version \(version) is both \(other.name) and \(name)")
            }
            var sql = try String(contentsOf: directory.appending(path: fileName), encoding: .utf8)
            // The recorded checksum is of the text without its final line break (as before this plugin).
            if sql.hasSuffix("\n") { sql.removeLast() }
            files.append((version, name, sql))
        }
        return files.sorted { $0.version < $1.version }
    }
}

struct PluginError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
