import ArgumentParser

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train")
    func run() throws { throw ValidationError("not built yet") }
}
