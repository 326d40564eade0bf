#!/usr/bin/env python3
"""Predict throughput of pfc-server against a FastAPI + PyTorch peer, in one run (issue 15).

    python3 Benchmarks/serve/predict_bench.py SERVER_BIN      (Benchmarks/serve/predict.sh builds it and calls this)

Starts `pfc-server serve` on SQLite with the access log on (the default; lines go to a file), trains a
digits model (K 300, N 100) through the API, exports it as safetensors and starts
Benchmarks/serve/fastapi_predict_peer.py on it (uvicorn, 2 workers, 1 torch thread each). Then wrk posts
one digits example per request (the same body to both) at 1, 16 and 64 connections and prints req/s, p50
and p99 per server, the pfc/peer ratio at 64 clients, and pfc against the 638 req/s measured before
batching. Environment: DURATION (wrk seconds, default 10), EPOCHS (default 10), PFC_ARGS (extra serve
flags, e.g. "--predict-batch-rows 32"), CLIENTS (default "1 16 64"), NO_PEER=1 to skip the peer.
"""
import collections, json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.path.abspath(sys.argv[1])
DURATION = int(os.environ.get("DURATION", "10"))
EPOCHS = int(os.environ.get("EPOCHS", "10"))
CLIENTS = [int(c) for c in os.environ.get("CLIENTS", "1 16 64").split()]
TODAY = 638.0  # req/s at 64 clients before batching (issue 15)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_healthy(base, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not become healthy")


def wrk(url, body, key, clients):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write('wrk.method = "POST"\n')
    lua.write(f"wrk.body = {json.dumps(body)}\n")
    lua.write('wrk.headers["Content-Type"] = "application/json"\n')
    if key:
        lua.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    lua.close()
    threads = min(2, clients)
    subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", "-d2s", "-s", lua.name, url], capture_output=True)  # warm-up
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{clients}", f"-d{DURATION}s", "--latency", "-s", lua.name, url],
                         capture_output=True, text=True).stdout
    os.unlink(lua.name)

    def latency(p):
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": latency(50), "p99": latency(99),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": errors.group(0) if errors else "", "raw": out}


def main():
    work = tempfile.mkdtemp(prefix="pfc-predict-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = os.environ.get("PFC_ARGS", "").split()
    log = open(os.path.join(work, "server.log"), "w")
    # The access log stays on (the default); --rate-limit 0: one key sends thousands of requests a second.
    server = subprocess.Popen([BIN, "serve", "--port", str(port), "--data-dir", os.path.join(work, "data"), "--rate-limit", "0", *extra],
                              stdout=log, stderr=subprocess.STDOUT)
    peer = None
    try:
        wait_healthy(base)
        key = open(os.path.join(work, "data", "default-api-key")).read().strip()

        def call(method, path, body=None, content_type="application/json", raw=False):
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            req = urllib.request.Request(base + path, data=data, method=method)
            req.add_header("Authorization", f"Bearer {key}")
            if data is not None:
                req.add_header("Content-Type", content_type)
            with urllib.request.urlopen(req, timeout=600) as r:
                payload = r.read()
                return payload if raw else json.loads(payload or b"null")

        fixtures = os.path.join(ROOT, "Tests", "PFCTests", "Fixtures")
        csv = open(os.path.join(fixtures, "digits_train.csv"), "rb").read()
        ds = call("POST", "/v1/datasets?name=digits&image_shape=8,8", csv, "text/csv")
        model = call("POST", "/v1/models", {"name": "digits", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 300, "iterations": 100})
        t0 = time.time()
        job = call("POST", f"/v1/models/{model['id']}/train", {"dataset_id": ds["id"], "epochs": EPOCHS, "learning_rate": 0.002})
        while True:
            j = call("GET", f"/v1/jobs/{job['id']}")
            if j["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        if j["state"] != "succeeded":
            raise RuntimeError(f"training {j['state']}: {j.get('error')}")
        print(f"trained digits K 300 N 100, {EPOCHS} epochs, in {time.time() - t0:.1f} s", flush=True)
        test_rows = [[float(v) for v in line.split(",")[1:]]
                     for line in open(os.path.join(fixtures, "digits_test.csv")).read().strip().split("\n")[1:]]
        body = json.dumps({"inputs": [test_rows[0]]})
        path = f"/v1/models/{model['id']}/predict"

        # The compute ceiling: the test rows as one request (parts of the batch size on every compute thread).
        call("POST", path, {"inputs": test_rows[:64]})
        t0 = time.time()
        many = call("POST", path, {"inputs": test_rows})
        took = time.time() - t0
        print(f"one request of {len(many['predictions'])} rows: {took * 1000:.0f} ms = {len(test_rows) / took:.0f} rows/s "
              f"(the forward-pass ceiling at this load)", flush=True)

        results = {}
        if os.environ.get("NO_PEER") != "1":
            blob = call("GET", f"/v1/models/{model['id']}/versions/1/weights?format=safetensors", raw=True)
            weights = os.path.join(work, "model.safetensors")
            open(weights, "wb").write(blob)
            peer_port = free_port()
            peer = subprocess.Popen([sys.executable, "-m", "uvicorn", "fastapi_predict_peer:app", "--host", "127.0.0.1",
                                     "--port", str(peer_port), "--workers", "2", "--log-level", "warning", "--no-access-log"],
                                    cwd=os.path.join(ROOT, "Benchmarks", "serve"),
                                    env={**os.environ, "PFC_PEER_WEIGHTS": weights, "OMP_NUM_THREADS": "1"})
            peer_base = f"http://127.0.0.1:{peer_port}"
            wait_healthy(peer_base)
            # Same model, same answers: the peer's classes agree with pfc-server's on the test rows.
            ours = call("POST", path, {"inputs": test_rows[:100]})
            req = urllib.request.Request(peer_base + path, data=json.dumps({"inputs": test_rows[:100]}).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            theirs = json.loads(urllib.request.urlopen(req, timeout=60).read())
            agree = sum(a == b for a, b in zip(ours["predictions"], theirs["predictions"]))
            print(f"peer agrees with pfc-server on {agree}/100 test predictions", flush=True)
            for c in CLIENTS:
                results[("peer", c)] = wrk(peer_base + path, body, None, c)
        for c in CLIENTS:
            results[("pfc", c)] = wrk(base + path, body, key, c)

        load = open("/proc/loadavg").read().split()[:3]
        print(f"\nPOST {path}, one digits example per request (K 300, N 100), wrk, {DURATION} s per point; "
              f"{os.cpu_count()} cores, load average {' '.join(load)}")
        print(f"pfc-server flags: --rate-limit 0 {' '.join(extra)} (access log on)")
        print(f"{'server':<26} {'clients':>7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for (name, c), r in sorted(results.items(), key=lambda kv: (kv[0][0] != "pfc", kv[0][1])):
            label = "pfc-server" if name == "pfc" else "FastAPI+PyTorch (2 w.)"
            print(f"{label:<26} {c:>7} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['non2xx']:>8} {r['errors']}")
        top = max(CLIENTS)
        ours = results.get(("pfc", top))
        if ours:
            print(f"pfc-server at {top} clients: {ours['rps'] / TODAY:.1f}x the {TODAY:.0f} req/s before batching "
                  f"(target >= 6x with p99 <= 30 ms: {'met' if ours['rps'] >= 6 * TODAY and ours['p99'] <= 30 else 'NOT met'})")
        if ours and ("peer", top) in results and results[("peer", top)]["rps"] > 0:
            ratio = ours["rps"] / results[("peer", top)]["rps"]
            print(f"pfc/peer at {top} clients: {ratio:.1f}x (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
        if ("pfc", 1) in results:
            p50 = results[("pfc", 1)]["p50"]
            print(f"pfc-server at 1 client: p50 {p50:.2f} ms (target <= 1.5 ms: {'met' if p50 <= 1.5 else 'NOT met'})")
        if any(r["non2xx"] for r in results.values()):
            # Which statuses, from the access log (and any warning the server logged), so a non-2xx is never a mystery.
            log.flush()
            lines = open(os.path.join(work, "server.log"), errors="replace").read().split("\n")
            codes = collections.Counter(l.rsplit(" ", 1)[-1] for l in lines if re.search(r" [345]\d\d$", l) and "[HTTP]" in l)
            print("non-2xx statuses in the access log: " + ", ".join(f"{c} x{n}" for c, n in sorted(codes.items())))
            for l in [l for l in lines if " warning " in l or " error " in l][:5]:
                print("  server: " + l[:300])
        stats = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        lines = [l for l in stats.split("\n") if l.startswith("pfc_predict")]
        if lines:
            print("\n" + "\n".join(lines[:40]))
    finally:
        if peer:
            peer.terminate()
            peer.wait(timeout=30)
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
