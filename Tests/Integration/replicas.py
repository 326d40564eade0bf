#!/usr/bin/env python3
"""Two pfc-server processes on one PostgreSQL: they split queued jobs with none run twice, and a
job whose process is killed with SIGKILL is finished by the other once its lease expires.

Run under scripts/with-postgres.sh (reads PFC_TEST_DATABASE_URL):
    scripts/with-postgres.sh python3 Tests/Integration/replicas.py .build/debug/pfc-server
Prints '2 passed, 0 failed' style summary lines; exits non-zero on failure.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/pfc-server")
URL = os.environ.get("PFC_TEST_DATABASE_URL")
if not URL:
    sys.exit("PFC_TEST_DATABASE_URL is not set: run under scripts/with-postgres.sh")
LEASE = 3


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, name, key):
        self.name, self.key, self.port = name, key, free_port()
        self.dir = tempfile.mkdtemp(prefix=f"pfc-{name}-")
        self.log = open(os.path.join(self.dir, "log.txt"), "w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", str(self.port), "--database-url", URL, "--data-dir", self.dir,
             "--lease-seconds", str(LEASE), "--instance-id", name, "--no-access-log"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start: {self.logtext()}")

    def call(self, method, path, body=None, ctype="application/json"):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw and r.headers.get_content_type() == "application/json" else raw)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def claimed(self):
        return self.logtext().count("job claimed")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def wait_jobs(server, ids, timeout=600):
    deadline = time.time() + timeout
    jobs = {}
    while time.time() < deadline:
        jobs = {i: server.call("GET", f"/v1/jobs/{i}")[1] for i in ids}
        if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs.values()):
            return jobs
        time.sleep(0.2)
    raise RuntimeError(f"jobs did not finish: {[j['state'] for j in jobs.values()]}")


def main():
    key = subprocess.run([BIN, "keys", "create", "--tenant", f"replicas-{random.randrange(1 << 30)}", "--database-url", URL],
                         check=True, capture_output=True, text=True).stdout.strip()
    a, b = Server("replica-a", key), Server("replica-b", key)
    passed = failed = 0
    try:
        rng = random.Random(0)
        rows = [[rng.random() for _ in range(16)] for _ in range(300)]
        labels = [i % 3 for i in range(300)]
        status, ds = a.call("POST", "/v1/datasets", {"name": "replicas", "features": rows, "labels": labels})
        assert status == 201, ds

        # 1. Twenty queued jobs split between the two processes, none run twice.
        models, jobs = [], []
        for i in range(20):
            s, m = (a if i % 2 else b).call("POST", "/v1/models", {"name": f"m{i}", "kind": "pfc", "input_dim": 16,
                                                                   "output_dim": 3, "basis": 16, "iterations": 10})
            assert s == 201, m
            models.append(m["id"])
            s, j = (a if i % 2 else b).call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": ds["id"], "epochs": 3})
            assert s == 202, j
            jobs.append(j["id"])
        done = wait_jobs(a, jobs)
        ok = all(j["state"] == "succeeded" and j["attempts"] == 1 for j in done.values())  # attempts counts runs
        versions = [[v["version"] for v in a.call("GET", f"/v1/models/{m}/versions")[1]["items"]] for m in models]
        ok = ok and all(v == [0, 1] for v in versions)
        split = (a.claimed(), b.claimed())
        ok = ok and split[0] + split[1] == 20 and min(split) >= 1
        print(f"20 jobs on two replicas: claimed {split}, all succeeded once: {ok}")
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)

        # 2. SIGKILL the process running a job: the other finishes it after the lease expires.
        s, m = a.call("POST", "/v1/models", {"name": "long", "kind": "pfc", "input_dim": 16, "output_dim": 3,
                                             "basis": 48, "iterations": 60})
        s, j = a.call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": ds["id"], "epochs": 400, "batch_size": 20,
                                                              "early_stopping": None})
        deadline = time.time() + 60
        while a.call("GET", f"/v1/jobs/{j['id']}")[1]["state"] != "running" and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        runner = a if f"job claimed" in a.logtext() and j["id"] in a.logtext() else b
        survivor = b if runner is a else a
        runner.stop(signal.SIGKILL)
        t0 = time.time()
        final = wait_jobs(survivor, [j["id"]])[j["id"]]
        versions = [v["version"] for v in survivor.call("GET", f"/v1/models/{m['id']}/versions")[1]["items"]]
        ok = final["state"] == "succeeded" and final["attempts"] == 2 and versions == [0, 1] and j["id"] in survivor.logtext()
        print(f"kill -9 of {runner.name} mid-job: finished by {survivor.name} after {time.time() - t0:.1f} s, "
              f"attempts {final['attempts']}, versions {versions}: {ok}")
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    finally:
        for s in (a, b):
            s.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
