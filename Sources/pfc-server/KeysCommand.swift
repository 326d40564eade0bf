import ArgumentParser
import Foundation
import Service
import Storage

/// `pfc-server keys create|list|revoke|rotate`: API keys. A secret is printed once, on stdout;
/// only its SHA-256 is stored. Revocation holds from the key's next request on, on every replica.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Manage API keys.",
                                                    subcommands: [Create.self, List.self, Revoke.self, Rotate.self])

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

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List API keys (ids, tenants, labels, state; never secrets).",
            discussion: "One key per line, tab-separated: key id, tenant name, tenant id, label, created, state "
                + "(active, 'revoked <time>' or 'valid until <time>' in a rotation's grace period).")

        @Option(help: "Only this tenant's keys (by name).") var tenant: String?
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let store = try database.open(migrate: true)
            defer { store.close() }
            let keys: [APIKey]
            if let tenant {
                guard let found = try store.tenant(named: tenant) else { throw KeyCommandFailure(description: "no tenant named '\(tenant)'") }
                keys = try store.apiKeys(tenantID: found.id)
            } else {
                keys = try store.allAPIKeys()
            }
            var names: [String: String] = [:]
            let now = StoreClock.now()
            for key in keys {
                if names[key.tenantID] == nil { names[key.tenantID] = (try? store.tenant(id: key.tenantID))?.name ?? "?" }
                let state = key.revokedAt.map { ($0 > now ? "valid until " : "revoked ") + $0.ISO8601Format() } ?? "active"
                print([key.id, names[key.tenantID]!, key.tenantID, key.label, key.createdAt.ISO8601Format(), state].joined(separator: "\t"))
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an API key at once: its next request answers 401.")

        @Option(help: "The key's id (from `keys list`).") var id: String
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let store = try database.open(migrate: true)
            defer { store.close() }
            do {
                let key = try APIKeys.revoke(in: store, keyID: id)
                FileHandle.standardError.write(Data("revoked key \(key.id) of tenant \(key.tenantID)\n".utf8))
            } catch StoreError.notFound {
                throw KeyCommandFailure(description: "no valid API key with id \(id) (see `pfc-server keys list`)")
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace an API key: print a new key for the same tenant on stdout, once, and revoke the old one.")

        @Option(help: "The key's id (from `keys list`).") var id: String
        @Option(name: .customLong("grace-seconds"), help: "Seconds the old key keeps working (0: revoked at once).")
        var graceSeconds: Double = 0
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard graceSeconds.isFinite, (0...31_536_000).contains(graceSeconds) else {
                throw ValidationError("--grace-seconds must be in 0…31536000 (a year)")
            }
        }

        func run() throws {
            let store = try database.open(migrate: true)
            defer { store.close() }
            do {
                let rotated = try APIKeys.rotate(in: store, keyID: id, graceSeconds: graceSeconds)
                print(rotated.secret)
                let until = rotated.oldKey.revokedAt.map { $0.ISO8601Format() } ?? "now"
                FileHandle.standardError.write(Data(
                    "new key \(rotated.newKey.id) for tenant \(rotated.newKey.tenantID); old key \(id) stops at \(until)\n".utf8))
            } catch StoreError.notFound {
                throw KeyCommandFailure(description: "no valid API key with id \(id) (see `pfc-server keys list`)")
            }
        }
    }
}

/// A failure reported without the usage text (exit status 1).
private struct KeyCommandFailure: Error, CustomStringConvertible {
    let description: String
}
