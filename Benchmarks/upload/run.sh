#!/usr/bin/env bash
# Upload throughput of MNIST's training set through POST /v1/datasets (issue 16), release build, SQLite,
# access log on (the default):   Benchmarks/upload/run.sh [--repeat 3] [--only npy] [--postgres URL]
# PostgreSQL:   scripts/with-postgres.sh bash -c 'Benchmarks/upload/run.sh --postgres "$PFC_TEST_DATABASE_URL"'

set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product pfc-server >&2
bin="$(swift build -c release --scratch-path .build-release --show-bin-path)/pfc-server"
echo "command: Benchmarks/upload/run.sh $*"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
case " $* " in *" --postgres "*) echo "store:   PostgreSQL" ;; *) echo "store:   SQLite (default)" ;; esac
python3 Benchmarks/upload/upload.py --server "$bin" "$@"
