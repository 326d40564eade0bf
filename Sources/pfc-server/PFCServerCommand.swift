import ArgumentParser

/// The `pfc-server` command: the server and its offline tools.
@main
struct PFCServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pfc-server",
        abstract: "Train, serve and explain interpretable PFC networks.",
        subcommands: [ServeCommand.self, MigrateCommand.self, KeysCommand.self, TrainCommand.self, EvaluateCommand.self]
    )
}
