#!/usr/bin/env python3
"""Job events across two replicas on one PostgreSQL (issue 13): a subscriber on replica A follows a
job that runs on replica B. Every progress event reaches A within 1 s of B's own (in-process)
delivery, which follows each heartbeat's commit; A gets the final `end` event; and after A's LISTEN
connection is killed (pg_terminate_backend) A reconnects, re-reads the job and goes on.

Run under scripts/with-postgres.sh (reads PFC_TEST_DATABASE_URL):
    scripts/with-postgres.sh python3 Tests/Integration/events_replicas.py .build/debug/pfc-server
Prints one line per check and 'N passed, M failed'; exits non-zero on failure.
"""
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replicas import BIN, URL, Server  # noqa: E402  (the same two-replica harness as replicas.py and resume.py)


class Follower(threading.Thread):
    """Reads one event stream; records (name, id, data, arrival time) per event."""

    def __init__(self, server, job_id):
        super().__init__(daemon=True)
        self.events, self.error = [], None
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=120)
        self.sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.key}\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        while self.file.readline() not in (b"\r\n", b""):
            pass

    def run(self):
        try:
            buf, name, eid, data = b"", None, None, []
            while True:
                size = int(self.file.readline().strip() or b"0", 16)
                if size == 0:
                    return
                buf += self.file.read(size)
                self.file.read(2)
                now = time.time()
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.decode()
                    if line == "":
                        if name:
                            self.events.append((name, eid, "\n".join(data), now))
                            if name == "end":
                                return
                        name, eid, data = None, None, []
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("id: "):
                        eid = int(line[4:])
                    elif line.startswith("data: "):
                        data.append(line[6:])
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            self.error = e


def psql(sql):
    return subprocess.run(["psql", URL, "-Atc", sql], capture_output=True, text=True, timeout=30)


def main():
    key = subprocess.run([BIN, "keys", "create", "--tenant", f"events-{random.randrange(1 << 30)}", "--database-url", URL],
                         check=True, capture_output=True, text=True).stdout.strip()
    b = Server("replica-b", key)
    a = None
    passed = failed = 0

    def check(ok, text):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + text)
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)

    try:
        rng = random.Random(0)
        rows = [[rng.random() for _ in range(16)] for _ in range(600)]
        s, ds = b.call("POST", "/v1/datasets", {"name": "ev", "features": rows, "labels": [i % 3 for i in range(600)]})
        assert s == 201, ds
        s, m = b.call("POST", "/v1/models", {"name": "ev", "kind": "pfc", "input_dim": 16, "output_dim": 3, "basis": 48, "iterations": 40})
        assert s == 201, m
        s, j = b.call("POST", f"/v1/models/{m['id']}/train",
                      {"dataset_id": ds["id"], "epochs": int(os.environ.get("EVENTS_EPOCHS", "200")), "batch_size": 20, "early_stopping": None})
        assert s == 202, j
        deadline = time.time() + 60
        while b.call("GET", f"/v1/jobs/{j['id']}")[1]["state"] != "running" and time.time() < deadline:
            time.sleep(0.05)
        # Replica A starts only now, so the job is B's (A's worker finds the queue empty).
        a = Server("replica-a", key)
        on_a, on_b = Follower(a, j["id"]), Follower(b, j["id"])
        on_a.start()
        on_b.start()
        # Mid-job, kill every LISTEN connection: A must reconnect and re-read the job.
        time.sleep(4)
        killed = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pfc-server-listen'")
        t_kill = time.time()
        on_a.join(600)
        on_b.join(60)
        final = b.call("GET", f"/v1/jobs/{j['id']}")[1]
        check(on_a.status == 200 and on_b.status == 200 and on_a.error is None and on_b.error is None,
              f"streams on A and B: {on_a.status}/{on_b.status}, errors {on_a.error}/{on_b.error}")
        check(final["state"] == "succeeded", f"job ran on B: {final['state']}, B claimed it: {j['id'] in b.logtext()}")
        ids_a = [e[1] for e in on_a.events]
        check(len(ids_a) > 5 and ids_a == sorted(set(ids_a)), f"A got {len(ids_a)} events, ids strictly increasing")
        check(bool(on_a.events) and on_a.events[-1][0] == "end" and '"succeeded"' in on_a.events[-1][2], "A got the end event")
        # Latency: each event B delivered (in-process, right after the heartbeat's commit) reaches A within 1 s.
        at_b = {e[1]: e[3] for e in on_b.events}
        at_a = {e[1]: e[3] for e in on_a.events}
        common = sorted(set(at_a) & set(at_b))
        lags = [at_a[i] - at_b[i] for i in common]
        worst = max(lags) if lags else float("inf")
        after_kill = [i for i in common if at_b[i] > t_kill + 2]  # once A had time to reconnect
        missing = [i for i in at_b if i not in at_a and at_b[i] > t_kill + 2]
        check(len(common) >= 5 and worst < 1.0,
              f"{len(common)} events seen on both; A's lag behind B: max {worst * 1000:.0f} ms, "
              f"median {sorted(lags)[len(lags) // 2] * 1000:.0f} ms" if lags else "no common events")
        gaps = [b2 - b1 for b1, b2 in zip(sorted(at_b.values()), sorted(at_b.values())[1:])]
        print(f"     heartbeat interval on B: median {sorted(gaps)[len(gaps) // 2]:.2f} s" if gaps else "     no heartbeat gaps")
        check(killed.returncode == 0 and int(killed.stdout.strip() or 0) >= 2 and len(after_kill) >= 2 and not missing,
              f"LISTEN connections killed: {killed.stdout.strip() or killed.stderr.strip()}; A went on with {len(after_kill)} "
              f"events after it, missing {len(missing)}; A reconnected: {'re-established' in a.logtext()}")
    finally:
        for s in (a, b):
            if s:
                s.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
