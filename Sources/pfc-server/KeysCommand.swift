import ArgumentParser
import Service

/// `pfc-server keys create --tenant NAME`: prints a new API key once; only its SHA-256 is stored.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Manage API keys.",
                                                    subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API key for a tenant (created if new) and print it on stdout, once.")

        @Option(help: "Tenant name.") var tenant: String
        @Option(help: "A label stored with the key.") var label: String = ""
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let store = try database.open(migrate: true)
            defer { store.close() }
            print(try APIKeys.create(in: store, tenantName: tenant, label: label))
        }
    }
}
