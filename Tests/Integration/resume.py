#!/usr/bin/env python3
"""Resume from a checkpoint across replicas: two pfc-server processes on one PostgreSQL; the process
running a 10-epoch training job is killed with SIGKILL during the job's 7th epoch; the other
replica reclaims it when the lease expires and continues from the checkpoint of epoch 6 (its
progress shows `resumed_from` and starts at epoch >= 6, never at 1), and the job ends with exactly
one new model version.

Run under scripts/with-postgres.sh (reads PFC_TEST_DATABASE_URL):
    scripts/with-postgres.sh python3 Tests/Integration/resume.py .build/debug/pfc-server
Prints 'N passed, M failed'; exits non-zero on failure.
"""
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replicas import BIN, URL, Server, wait_jobs  # noqa: E402  (the same harness as replicas.py)

EPOCHS = 10


def main():
    key = subprocess.run([BIN, "keys", "create", "--tenant", f"resume-{random.randrange(1 << 30)}", "--database-url", URL],
                         check=True, capture_output=True, text=True).stdout.strip()
    a, b = Server("resume-a", key), Server("resume-b", key)
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)

    try:
        rng = random.Random(1)
        rows = [[rng.random() for _ in range(16)] for _ in range(3000)]
        labels = [i % 3 for i in range(3000)]
        status, ds = a.call("POST", "/v1/datasets", {"name": "resume", "features": rows, "labels": labels})
        assert status == 201, ds
        # Epochs of a few seconds (debug build), so a heartbeat lands in each and the kill in the 7th.
        s, m = a.call("POST", "/v1/models", {"name": "resume", "kind": "pfc", "input_dim": 16, "output_dim": 3,
                                             "basis": 128, "iterations": 100})
        assert s == 201, m
        s, j = a.call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": ds["id"], "epochs": EPOCHS, "batch_size": 10,
                                                              "early_stopping": None})
        assert s == 202, j
        job = j["id"]

        # Wait for the 7th epoch, then kill the process running the job.
        deadline = time.time() + 900
        seen = None
        while time.time() < deadline:
            seen = a.call("GET", f"/v1/jobs/{job}")[1]
            p = seen.get("progress") or {}
            # A heartbeat from inside epoch 7 (not its last batch, after which epoch 7's checkpoint is written).
            if seen["state"] in ("succeeded", "failed", "cancelled") or p.get("epoch", 0) > 7 \
                    or (p.get("epoch") == 7 and p.get("batch", 0) < p.get("batches", 0)):
                break
            time.sleep(0.05)
        p = seen.get("progress") or {}
        check(seen["state"] == "running" and p.get("epoch") == 7 and p.get("batch", 0) < p.get("batches", 0), f"caught the job in its 7th epoch (progress {p})")
        runner = a if job in a.logtext() else b
        survivor = b if runner is a else a
        runner.stop(signal.SIGKILL)
        killed_at = time.time()

        # The survivor's first progress of attempt 2 starts at epoch >= 6, resumed from the checkpoint.
        first = None
        while time.time() < killed_at + 600:
            j2 = survivor.call("GET", f"/v1/jobs/{job}")[1]
            if j2["attempts"] >= 2 and j2.get("progress") and j2["progress"].get("resumed_from"):
                first = j2["progress"]
                break
            if j2["state"] in ("succeeded", "failed", "cancelled"):
                first = j2.get("progress")
                break
            time.sleep(0.05)
        resumed = (first or {}).get("resumed_from") or {}
        check(first is not None and first["epoch"] >= 6 and resumed.get("epoch", 0) >= 6 and resumed.get("epoch", 99) <= 7,
              f"{survivor.name} resumed at {resumed} (first progress: epoch {first and first['epoch']}, batch {first and first['batch']})")

        final = wait_jobs(survivor, [job])[job]
        versions = [v["version"] for v in survivor.call("GET", f"/v1/models/{m['id']}/versions")[1]["items"]]
        check(final["state"] == "succeeded" and final["attempts"] == 2 and versions == [0, 1],
              f"finished by {survivor.name} {time.time() - killed_at:.1f} s after the kill: state {final['state']}, "
              f"attempts {final['attempts']}, versions {versions}")
        check(final["result"]["metrics"].get("epochs_run") == EPOCHS, f"epochs_run {final['result']['metrics'].get('epochs_run')}")
        check("job resumes from its checkpoint" in survivor.logtext(), f"{survivor.name} logged the resume")
    finally:
        for s in (a, b):
            s.stop()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
