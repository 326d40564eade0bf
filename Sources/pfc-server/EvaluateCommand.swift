import ArgumentParser

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "evaluate")
    func run() throws { throw ValidationError("not built yet") }
}
