import ArgumentParser

/// `pfc-server migrate`: applies the SQL migrations (issue 4).
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Apply database migrations.")
    func run() throws { throw ValidationError("migrate is not built yet") }
}
