#!/usr/bin/env bash
# Predict throughput: pfc-server (dynamic batching) against FastAPI + PyTorch, in one run (issue 15).
#   Benchmarks/serve/predict.sh [SERVER_BIN]
# Without SERVER_BIN it builds the release binary (.build-release). Environment: see predict_bench.py
# (DURATION, EPOCHS, PFC_ARGS, CLIENTS, NO_PEER). Needs wrk; installs fastapi uvicorn torch safetensors
# with pip when missing (torch from the CPU wheel index).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && swift build -c release --scratch-path .build-release --product pfc-server)
    BIN="$ROOT/.build-release/release/pfc-server"
fi
command -v wrk >/dev/null || { echo "predict.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@" \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
if [ "${NO_PEER:-0}" != 1 ]; then
    python3 -c 'import fastapi, uvicorn, safetensors' 2>/dev/null || pip_install fastapi uvicorn safetensors
    python3 -c 'import torch' 2>/dev/null || pip_install torch --index-url https://download.pytorch.org/whl/cpu
fi
exec python3 "$ROOT/Benchmarks/serve/predict_bench.py" "$BIN"
