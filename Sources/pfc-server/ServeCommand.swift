import ArgumentParser

/// `pfc-server serve`: starts the HTTP server (issue 3).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Start the HTTP server.")
    func run() throws { throw ValidationError("serve is not built yet") }
}
