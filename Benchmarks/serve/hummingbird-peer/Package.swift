// swift-tools-version: 6.0
// The Hummingbird 2 peer of Benchmarks/serve/run.sh: GET /healthz and POST /echo shaped like
// pfc-server's, no request logging. A package of its own (built by run.sh into its own scratch
// folder from the local package mirror): SwiftNIO is never part of pfc-server's package graph.
import PackageDescription

let package = Package(
    name: "hummingbird-peer",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(name: "hb-peer", dependencies: [.product(name: "Hummingbird", package: "hummingbird")]),
    ]
)
