// hb-peer PORT: Hummingbird 2 serving the two routes pfc-server's benchmark measures.
//   GET /healthz → 200 {"status":"ok"} (application/json)
//   POST /echo   → 200 with the request body (at most 1 MiB) as application/json
import Hummingbird
import Logging

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 18280
let router = Router()
let healthz = ByteBuffer(string: #"{"status":"ok"}"#)
router.get("healthz") { _, _ -> Response in
    Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: healthz))
}
router.post("echo") { request, _ -> Response in
    let body = try await request.body.collect(upTo: 1 << 20)
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
}
var logger = Logger(label: "hb-peer")
logger.logLevel = .warning
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
try await app.runService()
