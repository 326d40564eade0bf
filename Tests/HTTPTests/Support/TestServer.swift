// TestServer: starts an HTTPServer on 127.0.0.1:0 for one test and shuts it down afterwards.

import Foundation
import Logging
@testable import HTTP

enum TestServer {
    /// Runs `body` against a started server; shuts it down and waits for it afterwards.
    static func with(_ configure: (inout HTTPServer.Configuration) -> Void = { _ in },
                     router: Router, _ body: (HTTPServer) throws -> Void) throws {
        var config = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        config.handlerThreads = 8
        configure(&config)
        var logger = Logger(label: "test.http")
        logger.logLevel = .critical
        let server = HTTPServer(configuration: config, router: router, logger: logger)
        try server.start()
        defer {
            server.shutdown(deadline: .seconds(2))
            _ = server.waitUntilStopped(timeout: .seconds(20))
        }
        try body(server)
    }

    /// Polls `condition` until it holds or `timeout` passes.
    static func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// A router with the routes most tests use.
    static func basicRouter() -> Router {
        var router = Router()
        router.get("/hello") { _, _ in .text("hello") }
        router.get("/items/{id}") { req, _ in .text("item \(req.parameter("id") ?? "?") q=\(req.queryValue("q") ?? "-")") }
        router.post("/echo") { req, _ in
            Response(status: .ok, headers: ["Content-Type": "application/octet-stream"], body: .bytes(try req.body.collect()))
        }
        router.get("/slow/{ms}") { req, _ in
            usleep(UInt32(Int(req.parameter("ms") ?? "0") ?? 0) * 1000)
            return .text("slow \(req.parameter("ms") ?? "")")
        }
        return router
    }
}
