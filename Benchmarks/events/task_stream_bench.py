#!/usr/bin/env python3
"""A streamed task of the 60,000 MNIST training examples (NDJSON, POST /v1/models/{id}/tasks/stream)
while wrk measures GET /v1/models/{id} with 16 connections (issue 13). Prints the task's summary and
time, the latency figures during the upload, and the server's thread count; exits 1 when the task
fails or p99 >= 50 ms.
"""
import argparse
import gzip
import http.client
import json
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--key", required=True)
p.add_argument("--pid", type=int, required=True)
p.add_argument("--mnist", default="/work/shared/data/mnist")
p.add_argument("--rows", type=int, default=60000)
p.add_argument("--clients", type=int, default=16)
args = p.parse_args()
BASE = f"http://127.0.0.1:{args.port}"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {args.key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read() or b"{}")


def threads():
    with open(f"/proc/{args.pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


def ndjson_lines():
    with gzip.open(f"{args.mnist}/train-images-idx3-ubyte.gz") as f:
        _, n, rows, cols = struct.unpack(">IIII", f.read(16))
        images = f.read(n * rows * cols)
    with gzip.open(f"{args.mnist}/train-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = f.read(n)
    d = rows * cols
    table = ["0"] + [f"{v / 255:.3g}" for v in range(1, 256)]
    out = []
    for i in range(min(n, args.rows)):
        px = images[i * d:(i + 1) * d]
        out.append(('{"features":[' + ",".join(table[v] for v in px) + '],"label":' + str(labels[i]) + "}\n").encode())
    return out, d


def main():
    lines, d = ndjson_lines()
    body_bytes = sum(len(l) for l in lines)
    s, model = call("POST", "/v1/models", {"name": "mnist-stream", "kind": "pfc", "input_dim": d, "output_dim": 10,
                                           "basis": 300, "iterations": 100, "nonnegative": True})
    s, probe = call("POST", "/v1/models", {"name": "probe", "kind": "pfc", "input_dim": 4, "output_dim": 2, "basis": 4})
    before = threads()
    result = {}

    def upload():
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=3600)
        conn.putrequest("POST", f"/v1/models/{model['id']}/tasks/stream?name=mnist&batch_size=50&window=15&slide=0.2&learning_rate=0.0005")
        conn.putheader("Authorization", f"Bearer {args.key}")
        conn.putheader("Content-Type", "application/x-ndjson")
        conn.putheader("Content-Length", str(body_bytes))
        conn.endheaders()
        t0 = time.time()
        for i in range(0, len(lines), 500):
            conn.send(b"".join(lines[i:i + 500]))
        result["sent"] = time.time() - t0
        r = conn.getresponse()
        result["status"], result["body"] = r.status, json.loads(r.read() or b"{}")
        result["seconds"] = time.time() - t0

    up = threading.Thread(target=upload)
    up.start()
    time.sleep(2)
    lua = "/tmp/pfc-task-bench-auth.lua"
    with open(lua, "w") as f:
        f.write(f'wrk.headers["Authorization"] = "Bearer {args.key}"\n')
    samples = [threads()]
    wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.clients}", "-d30s", "--latency", "-s", lua, f"{BASE}/v1/models/{probe['id']}"],
                           stdout=subprocess.PIPE, text=True)
    while wrk.poll() is None:
        samples.append(threads())
        time.sleep(1)
    out = wrk.stdout.read()
    still_uploading = up.is_alive()
    up.join()

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    p50, p99 = ms("50"), ms("99")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    summary = result.get("body", {})
    print("| figure | value |\n|---|---|")
    print(f"| body | {len(lines)} MNIST examples ({d} features), {body_bytes / 2**20:.0f} MiB of NDJSON |")
    print(f"| model | PFC K 300, N 100, non-negative; batch 50, window 15, slide 0.2 |")
    print(f"| answer | {result.get('status')}: {json.dumps({k: summary.get(k) for k in ('examples', 'batches', 'model_version', 'columns', 'accuracy', 'mean_loss')})} |")
    print(f"| upload + training time | {result.get('seconds', 0):.1f} s (body sent in {result.get('sent', 0):.1f} s) |")
    print(f"| GET /v1/models/{{id}} during the stream, {args.clients} clients, 30 s | **p50 {p50:.2f} ms, p99 {p99:.2f} ms**, {rps:.0f} req/s, non-2xx {non2xx.group(1) if non2xx else 0} |")
    print(f"| stream still training when the measurement ended | {still_uploading} |")
    print(f"| server threads before / during (min-max) | {before} / {min(samples)}-{max(samples)} |")
    print("\nwrk output:\n```\n" + out.strip() + "\n```\n")
    ok = result.get("status") == 201 and summary.get("examples") == len(lines) and p99 < 50 and still_uploading
    print("RESULT: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


sys.exit(main())
