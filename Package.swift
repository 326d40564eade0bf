// swift-tools-version: 6.0
// pfc-server: interpretable PFC networks, continual learning and NPEFF behind a NIO-free HTTP API.
// Module layout and dependency direction: ../shared/ARCHITECTURE.md (dependencies point down only).
import PackageDescription

let package = Package(
    name: "pfc-server",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pfc-server", targets: ["pfc-server"]),
        .library(name: "PFC", targets: ["PFC"]),
        .library(name: "Linalg", targets: ["Linalg"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"), // tests only: reads openapi.yaml
        // Metrics: the swift-metrics API, exported as Prometheus text by swift-prometheus (neither uses SwiftNIO).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C shims: module maps only, no Swift.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),  // HTTP's TLS transport

        // Pure compute. CKernels: the active-set FISTA's sparse-row kernels in C (AVX2 + FMA chosen at run time).
        .target(name: "CKernels"),
        .target(name: "Linalg", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "PFC", dependencies: ["Linalg"]),
        .target(name: "NPEFF", dependencies: ["PFC", "Linalg"]),

        // Transport and persistence.
        .target(name: "HTTP", dependencies: [
            "CSSL", .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .target(name: "Storage", dependencies: [
            "CLibPQ", "CSQLite", "COpenSSL",
            .product(name: "Logging", package: "swift-log"),
        ], plugins: ["EmbedMigrations"]),
        // Compiles migrations/<dialect>/NNNN_name.sql into Storage (`EmbeddedMigrations`): a new file is a new migration.
        .plugin(name: "EmbedMigrations", capability: .buildTool(), path: "Plugins/EmbedMigrations"),

        // The REST service: resources, validation, jobs, auth.
        .target(name: "Service", dependencies: [
            "PFC", "Linalg", "HTTP", "Storage", "NPEFF",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], resources: [
            // A symbolic link to ../openapi.yaml: the contract compiled into the binary (PackageResources.openapi_yaml).
            .embedInCode("OpenAPI/openapi.yaml"),
            // The web dashboard served under /ui/ (UIRoutes.swift): one embedded file each, no Bundle lookup.
            .embedInCode("UI/index.html"), .embedInCode("UI/app.css"), .embedInCode("UI/api.js"),
            .embedInCode("UI/charts.js"), .embedInCode("UI/app.js"), .embedInCode("UI/favicon.svg"),
        ]),

        .executableTarget(name: "pfc-server", dependencies: [
            "PFC", "Linalg", "HTTP", "Storage", "Service",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Benchmarks (run by Benchmarks/*/run.sh, never by the test suite).
        .executableTarget(name: "pfc-bench", dependencies: ["PFC", "Linalg"], path: "Benchmarks/PFCBench"),
        .executableTarget(name: "pfc-npeff", dependencies: ["NPEFF", "PFC", "Linalg"], path: "Benchmarks/NPEFFBench"),
        .executableTarget(name: "pfc-continual", dependencies: ["PFC", "Linalg"], path: "Benchmarks/ContinualBench"),
        .executableTarget(name: "pfc-sequence", dependencies: ["PFC", "Linalg"], path: "Benchmarks/SequenceBench"),

        // libFuzzer targets (scripts/fuzz.sh builds them with --sanitize=fuzzer; a plain build replays inputs).
        .executableTarget(name: "pfc-fuzz", dependencies: ["Service", "PFC", "Linalg", "HTTP", "Storage"], path: "Fuzz/PFCFuzz"),

        .testTarget(name: "LinalgTests", dependencies: ["Linalg"]),
        .testTarget(name: "PFCTests", dependencies: ["PFC", "Linalg"], resources: [.copy("Fixtures")]),
        .testTarget(name: "NPEFFTests", dependencies: ["NPEFF", "PFC", "Linalg"]),
        // What the suites share: TestClient (loopback HTTP), TestDatabase and ServiceHarness (real stores
        // and a real server), OpenAPIValidator. A regular target, so test targets can depend on it.
        .target(name: "TestSupport", dependencies: [
            "Service", "HTTP", "Storage", "CSSL", .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "CSSL", "TestSupport"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "CSQLite", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: [
            "Service", "HTTP", "Storage", "PFC", "Linalg", "TestSupport", .product(name: "Yams", package: "Yams"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
