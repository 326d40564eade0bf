#!/usr/bin/env python3
"""SIGTERM ends `pfc-server serve` within its shutdown deadline even while a long prediction and a
training job are computing (issue 12: the process used to run a predict to its end, for minutes),
and the training job is released, not left running: queued again at once with its attempt not
counted (it used to wait out its lease, and three restarts failed it).

    python3 Tests/Integration/shutdown.py .build/debug/pfc-server
Prints a '1 passed, 0 failed' line; exits non-zero on failure.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/pfc-server")
DEADLINE = 3


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    port, data = free_port(), tempfile.mkdtemp(prefix="pfc-shutdown-")
    log = open(os.path.join(data, "log.txt"), "w+")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--data-dir", data, "--shutdown-seconds", str(DEADLINE),
                             "--no-access-log", "--log-level", "debug"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def call(method, path, body=None, timeout=30):
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method)
        req.add_header("Authorization", f"Bearer {key}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")

    key = None
    for _ in range(300):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    key = open(os.path.join(data, "default-api-key")).read().strip()
    # A model whose prediction of 100 rows takes many seconds (K 2000, N 1000), and a training job.
    _, model = call("POST", "/v1/models", {"name": "big", "kind": "pfc", "input_dim": 10, "output_dim": 2, "basis": 2000,
                                           "iterations": 1000})
    _, small = call("POST", "/v1/models", {"name": "small", "kind": "pfc", "input_dim": 10, "output_dim": 2, "basis": 400,
                                           "iterations": 200})
    rows = [[0.5] * 10 for _ in range(200)]
    _, ds = call("POST", "/v1/datasets", {"name": "d", "features": rows, "labels": [i % 2 for i in range(200)]})
    _, job = call("POST", f"/v1/models/{small['id']}/train", {"dataset_id": ds["id"], "epochs": 1000, "batch_size": 200})

    outcome = {}

    def predict():
        try:
            outcome["status"] = call("POST", f"/v1/models/{model['id']}/predict", {"inputs": rows[:100], "version": 0}, timeout=120)[0]
        except Exception as e:  # the connection is cut at the deadline
            outcome["error"] = repr(e)

    t = threading.Thread(target=predict, daemon=True)
    t.start()
    time.sleep(2)
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=DEADLINE + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    took = time.time() - started
    t.join(5)
    ok = code == 0 and took < DEADLINE + 2  # the deadline, then at most 1 s for cancelled handlers
    db = sqlite3.connect(os.path.join(data, "pfc.sqlite"))
    state, attempts, owner, began = db.execute("SELECT state, attempts, lease_owner, started_at FROM jobs WHERE id = ?",
                                               (job["id"],)).fetchone()
    db.close()
    # It ran (a job never claimed is queued with 0 attempts too), then was released.
    released = state == "queued" and attempts == 0 and owner is None and began is not None
    log.seek(0)
    if not (ok and released) or os.environ.get('VERBOSE'):
        print(log.read()[-3000:])
    print(f"SIGTERM during compute: exit code {code} after {took:.1f} s (deadline {DEADLINE} s); predict: {outcome}")
    print(f"the training job after the shutdown: state {state}, attempts {attempts}, lease owner {owner}, started at {began}")
    passed = int(ok) + int(released)
    print(f"{passed} passed, {2 - passed} failed")
    sys.exit(0 if passed == 2 else 1)


if __name__ == "__main__":
    main()
