#!/usr/bin/env python3
"""Event streams vs. the rest of the API (issue 13), against a running pfc-server.

Opens STREAMS_MAIN event streams on one running training job and STREAMS_OTHER on other (queued)
jobs, then measures an unrelated authenticated GET /v1/models/{id} with wrk (16 connections) while
they are open. Checks that every stream of the running job received every progress event in order
(the later a stream joined, the shorter its sequence, but it is the suffix of the longest one, with
strictly increasing ids, ending with `end`), that the other jobs' streams got their current state and
then `end` when those jobs were cancelled, and reads the server's thread count from /proc/PID/status
before and while the streams are open. Prints a Markdown report; exits 1 when a check fails.
"""
import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--key", required=True)
p.add_argument("--pid", type=int, required=True)
p.add_argument("--dataset", required=True)
p.add_argument("--main-streams", type=int, default=200)
p.add_argument("--other-jobs", type=int, default=10)
p.add_argument("--other-streams", type=int, default=50)
p.add_argument("--epochs", type=int, default=30)
p.add_argument("--duration", default="20s")
p.add_argument("--clients", type=int, default=16)
args = p.parse_args()
BASE = f"http://127.0.0.1:{args.port}"


def call(method, path, body=None, ctype="application/json"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {args.key}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read() or b"{}")


def threads():
    with open(f"/proc/{args.pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


async def follow(job_id, events, opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    writer.write(f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                 f"Authorization: Bearer {args.key}\r\n\r\n".encode())
    await writer.drain()
    status = (await reader.readline()).split()[1]
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    opened.append(int(status))
    if status != b"200":
        writer.close()
        return
    buf, name, eid, data = b"", None, None, []
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            break
        buf += await reader.readexactly(size)
        await reader.readexactly(2)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.decode()
            if line == "":
                if name or data:
                    events.append((name or "message", eid, "\n".join(data)))
                    if name == "end":
                        writer.close()
                        return
                name, eid, data = None, None, []
            elif line.startswith(":"):
                continue
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                eid = int(line[4:])
            elif line.startswith("data: "):
                data.append(line[6:])
    writer.close()


def wrk(path):
    lua = "/tmp/pfc-events-bench-auth.lua"
    with open(lua, "w") as f:
        f.write(f'wrk.headers["Authorization"] = "Bearer {args.key}"\n')
    out = subprocess.run(["wrk", "-t2", f"-c{args.clients}", f"-d{args.duration}", "--latency", "-s", lua, BASE + path],
                         capture_output=True, text=True, check=True).stdout
    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return ms("50"), ms("99"), rps, int(non2xx.group(1)) if non2xx else 0, errors.group(0) if errors else "none", out


async def main():
    report, failures = [], []
    s, model = call("POST", "/v1/models", {"name": "events-main", "kind": "pfc", "input_dim": 64, "output_dim": 10,
                                           "basis": 300, "iterations": 100})
    s, probe = call("POST", "/v1/models", {"name": "probe", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 16})
    s, job = call("POST", f"/v1/models/{model['id']}/train",
                  {"dataset_id": args.dataset, "epochs": args.epochs, "learning_rate": 0.002, "early_stopping": None})
    others = []
    for i in range(args.other_jobs):
        s, m = call("POST", "/v1/models", {"name": f"other{i}", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 16})
        s, j = call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": args.dataset, "epochs": 1})
        others.append(j["id"])
    deadline = time.time() + 60
    while call("GET", f"/v1/jobs/{job['id']}")[1]["state"] != "running":
        if time.time() > deadline:
            sys.exit("the main job did not start")
        await asyncio.sleep(0.1)
    before = threads()
    baseline = wrk(f"/v1/models/{probe['id']}")  # the same GET with no stream open
    main_events = [[] for _ in range(args.main_streams)]
    other_events = [[] for _ in range(args.other_streams)]
    opened = []
    tasks = [asyncio.create_task(follow(job["id"], main_events[i], opened)) for i in range(args.main_streams)]
    tasks += [asyncio.create_task(follow(others[i % len(others)], other_events[i], opened)) for i in range(args.other_streams)]
    deadline = time.time() + 60
    while len(opened) < len(tasks) and time.time() < deadline:
        await asyncio.sleep(0.05)
    during = [threads()]
    loop = asyncio.get_running_loop()
    measured = loop.run_in_executor(None, wrk, f"/v1/models/{probe['id']}")
    while not measured.done():
        during.append(threads())
        await asyncio.sleep(1)
    p50, p99, rps, non2xx, errors, raw = await measured
    state = call("GET", f"/v1/jobs/{job['id']}")[1]["state"]
    running_during = state == "running"
    await asyncio.wait(tasks[:args.main_streams], timeout=900)
    for j in others:
        call("DELETE", f"/v1/jobs/{j}")
    await asyncio.wait(tasks, timeout=60)
    final = call("GET", f"/v1/jobs/{job['id']}")[1]

    # Checks.
    if opened.count(200) != len(tasks):
        failures.append(f"streams opened with 200: {opened.count(200)} of {len(tasks)}")
    longest = max(main_events, key=len)
    progress_total = sum(1 for e in longest if e[0] == "progress")
    bad_order = sum(1 for ev in main_events if [e[1] for e in ev] != sorted(set(e[1] for e in ev)))
    not_suffix = sum(1 for ev in main_events if ev != longest[len(longest) - len(ev):])
    no_end = sum(1 for ev in main_events if not ev or ev[-1][0] != "end")
    min_len = min(len(ev) for ev in main_events)
    # (The worker may have run one of them after the main job ended and before it was cancelled.)
    other_ok = sum(1 for ev in other_events if len(ev) >= 2 and ev[0][0] == "progress" and ev[-1][0] == "end"
                   and ('"cancelled"' in ev[-1][2] or '"succeeded"' in ev[-1][2]))
    if bad_order: failures.append(f"{bad_order} streams with ids out of order")
    if not_suffix: failures.append(f"{not_suffix} streams missed an event (not a suffix of the longest sequence)")
    if no_end: failures.append(f"{no_end} streams without a final end event")
    if other_ok != args.other_streams: failures.append(f"other-job streams complete: {other_ok} of {args.other_streams}")
    if final["state"] != "succeeded": failures.append(f"main job ended {final['state']}")
    if not running_during: failures.append("the main job was no longer running when the measurement ended")
    if p99 >= 50: failures.append(f"p99 {p99:.2f} ms >= 50 ms")
    if non2xx: failures.append(f"{non2xx} non-2xx answers")

    print(f"| figure | value |\n|---|---|")
    print(f"| streams open (running job / other jobs) | {args.main_streams} / {args.other_streams} (on {len(others)} queued jobs) |")
    print(f"| GET /v1/models/{{id}} without streams, {args.clients} clients | p50 {baseline[0]:.2f} ms, p99 {baseline[1]:.2f} ms, {baseline[2]:.0f} req/s |")
    print(f"| GET /v1/models/{{id}} with the streams open, {args.clients} clients, {args.duration} | **p50 {p50:.2f} ms, p99 {p99:.2f} ms**, {rps:.0f} req/s, non-2xx {non2xx}, socket errors: {errors} |")
    print(f"| server threads before the streams (job running) | {before} |")
    print(f"| server threads while they are open (min/max of {len(during)} samples) | {min(during)} / {max(during)} |")
    print(f"| main job still running when the measurement ended | {running_during} |")
    print(f"| progress events of the running job (longest stream) | {progress_total} + end |")
    print(f"| events per stream of the running job (min / max) | {min_len} / {len(longest)} |")
    print(f"| streams with ids out of order / missing an event / without end | {bad_order} / {not_suffix} / {no_end} |")
    print(f"| other-job streams with their state and then end (cancelled, or run after the main job) | {other_ok} of {args.other_streams} |")
    print(f"| main job | {final['state']}, revision-ids {longest[0][1]}…{longest[-1][1]} |")
    print()
    print("wrk output (with streams):\n```\n" + raw.strip() + "\n```")
    print()
    print("RESULT: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1

sys.exit(asyncio.run(main()))
