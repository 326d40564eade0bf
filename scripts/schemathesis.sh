#!/usr/bin/env bash
# Property-based API testing of a running pfc-server against openapi.yaml with schemathesis (PyPI):
# no response may be a 5xx, and every documented response must match its schema.
#   scripts/schemathesis.sh BASE_URL API_KEY [more schemathesis run options…]
#   e.g. scripts/schemathesis.sh http://127.0.0.1:8080 "$PFC_API_KEY"
# Bounded and reproducible: 20 examples per operation, seed 0, one worker, 10 s per request.
# GET /v1/jobs/{id}/events is left out: an event stream stays open until its job ends.
# Exits with schemathesis' status (0 when every check held).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    echo "usage: scripts/schemathesis.sh BASE_URL API_KEY [schemathesis run options…]" >&2
    exit 2
fi
base_url="$1" api_key="$2"
shift 2

# schemathesis only warns when every request is refused with 401; a wrong key must fail the run.
python3 - "$base_url" "$api_key" <<'PY' || exit 1
import sys, urllib.request, urllib.error
url, key = sys.argv[1].rstrip("/") + "/v1/datasets?limit=1", sys.argv[2]
try:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + key}), timeout=10) as r:
        status = r.status
except urllib.error.HTTPError as e:
    status = e.code
except OSError as e:
    sys.exit(f"schemathesis: {url} is unreachable: {e}")
if status != 200:
    sys.exit(f"schemathesis: GET {url} with the key answered {status}, not 200 (is the key valid?)")
PY

# The options below are schemathesis 4's (3.x spelled several differently).
if ! python3 -c 'import schemathesis, sys; sys.exit(0 if schemathesis.__version__.startswith("4.") else 1)' 2>/dev/null; then
    echo "schemathesis: installing schemathesis 4 (PyPI)" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2 \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'schemathesis>=4,<5' >&2
fi

# A hooks module for what schemathesis cannot send by itself: NDJSON bodies (a string in the
# schema) go out as their text, like text/csv.
hooks_dir="$(mktemp -d)"
trap 'rm -rf "$hooks_dir"' EXIT
cat >"$hooks_dir/pfc_schemathesis_hooks.py" <<'PY'
import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
PY

# schemathesis keeps its crash cache (for `st replay ID`) in ./.schemathesis: run it from the
# git-ignored .build/schemathesis so the work tree stays clean (relative --report-dir paths land there too).
spec="$PWD/openapi.yaml"
mkdir -p .build/schemathesis
cd .build/schemathesis
PYTHONPATH="$hooks_dir${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=pfc_schemathesis_hooks \
python3 -m schemathesis.cli run "$spec" \
    --url "$base_url" \
    --header "Authorization: Bearer $api_key" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples 20 \
    --seed 0 \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --exclude-operation-id streamJobEvents \
    --no-color \
    "$@" || status=$?
exit "${status:-0}"
