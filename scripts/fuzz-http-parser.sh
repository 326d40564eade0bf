#!/usr/bin/env bash
# Builds and runs the libFuzzer target of the HTTP/1.1 request parser (Fuzz/HTTPParserFuzzer).
# Usage: scripts/fuzz-http-parser.sh [seconds=60] [extra libFuzzer flags…]
# Crashes are written to .build-fuzz/ as crash-<sha1>; replay one with: .build-fuzz/http-parser-fuzzer <file>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"; shift || true
out=.build-fuzz
mkdir -p "$out/corpus"
# Seed corpus: a few valid requests (first byte = read size selector).
printf '\x07GET /a?b=c HTTP/1.1\r\nHost: h\r\n\r\n' > "$out/corpus/get"
printf '\x03POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n' > "$out/corpus/chunked"
printf '\x1fPOST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc' > "$out/corpus/length"

swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
  -module-name HTTPParserFuzzer \
  Sources/HTTP/Parser/*.swift \
  Sources/HTTP/Message/HTTPHeaders.swift Sources/HTTP/Message/HTTPMethod.swift \
  Sources/HTTP/Message/HTTPStatus.swift Sources/HTTP/Message/HTTPVersion.swift \
  Sources/HTTP/Message/QueryItem.swift \
  Fuzz/HTTPParserFuzzer/FuzzEntry.swift \
  -o "$out/http-parser-fuzzer"

exec "$out/http-parser-fuzzer" "$out/corpus" -max_total_time="$seconds" -max_len=8192 -artifact_prefix="$out/" "$@"
