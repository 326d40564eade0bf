// libFuzzer entry for the HTTP/1.1 request parser: compiled together with Sources/HTTP/Parser and
// the message types it uses (see scripts/fuzz-http-parser.sh). The first input byte picks how the
// rest is split into reads, so the fuzzer also explores incremental parsing.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let step = Int(data[0] % 32) + 1
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var limits = HTTPParserLimits()
    limits.maxHeaderBytes = 4096
    limits.maxBodyBytes = 1 << 16
    var parser = HTTPRequestParser(limits: limits)
    var pending: [UInt8] = []
    var offset = 0
    while offset < input.count {
        let take = min(step, input.count - offset)
        pending += input[offset..<(offset + take)]
        offset += take
        while true {
            let result: (HTTPRequestParser.Event, Int)
            do {
                result = try pending.withUnsafeBytes { try parser.parse($0) }
            } catch {
                let code = (error as? HTTPParseError)?.status.code ?? -1
                precondition([400, 413, 417, 431, 501, 505].contains(code), "unexpected status \(code)")
                return 0
            }
            let (event, consumed) = result
            precondition(consumed >= 0 && consumed <= pending.count, "consumed out of range")
            if case .body(let range) = event {
                precondition(range.lowerBound >= 0 && range.upperBound <= pending.count, "body range out of bounds")
            }
            pending.removeFirst(consumed)
            if case .needMore = event, consumed == 0 { break }
        }
    }
    return 0
}
