#!/usr/bin/env python3
"""Benchmarks/ui/run.sh's measurement: N dashboards (tabs of one headless Chromium) on the model pages of
running training jobs while wrk measures an unrelated authenticated GET. See run.sh."""
import argparse
import http.client
import threading
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("SE_AVOID_STATS", "true")
os.environ.setdefault("SE_OFFLINE", "true")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--key", required=True)
p.add_argument("--pid", type=int, required=True)
p.add_argument("--tabs", type=int, default=10)
p.add_argument("--duration", default="20s")
p.add_argument("--clients", type=int, default=16)
p.add_argument("--csv", required=True)
p.add_argument("--followers", choices=["browser", "python"], default="browser",
               help="python: each dashboard's traffic without a browser (its event stream and the page's 3 s job-list poll)")
p.add_argument("--jobs", type=int, default=1, help="running training jobs (the server's --workers)")
p.add_argument("--tabs-per-browser", type=int, default=3,
               help="a browser opens at most 6 HTTP/1.1 connections per origin and every dashboard holds one event stream")
args = p.parse_args()
BASE = f"http://127.0.0.1:{args.port}"


def call(method, path, body=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {args.key}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def wrk(path):
    lua = "/tmp/pfc-ui-bench-auth.lua"
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
    return ms("50"), ms("99"), rps, int(non2xx.group(1)) if non2xx else 0, out


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """utime + stime of `pids` and all their descendants (from /proc), in seconds."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
                children.setdefault(int(f[1]), []).append(int(d))
            except OSError:
                pass
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
        todo += children.get(pid, [])
    return total / TICK


class Follower(threading.Thread):
    """One dashboard's traffic: the job's event stream (read to the end) and GET /v1/jobs?model_id= every 3 s."""

    def __init__(self, job_id, model_id):
        super().__init__(daemon=True)
        self.job_id, self.model_id, self.events, self.stop = job_id, model_id, 0, threading.Event()

    def run(self):
        threading.Thread(target=self.poll, daemon=True).start()
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=600)
        conn.request("GET", f"/v1/jobs/{self.job_id}/events", headers={"Authorization": f"Bearer {args.key}", "Accept": "text/event-stream"})
        r = conn.getresponse()
        while not self.stop.is_set():
            line = r.fp.readline()
            if not line:
                break
            if line.startswith(b"event: progress"):
                self.events += 1
        conn.close()

    def poll(self):
        while not self.stop.wait(3):
            call("GET", f"/v1/jobs?model_id={self.model_id}&limit=1000&offset=0")


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def threads():
    for line in open(f"/proc/{args.pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def main():
    failures = []
    ds = call("POST", "/v1/datasets?name=digits&image_shape=8,8", open(args.csv, "rb").read(), "text/csv")
    probe = call("POST", "/v1/models", {"name": "probe", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 16})
    models, jobs = [], []
    for i in range(args.jobs):  # running jobs (one per worker); the dashboards split between them
        m = call("POST", "/v1/models", {"name": f"ui-bench-{i}", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 300, "iterations": 100})
        j = call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": ds["id"], "epochs": 1000, "batch_size": 50, "learning_rate": 0.002,
                                                          "validation_fraction": 0.1, "early_stopping": None})
        models.append(m)
        jobs.append(j)
    end = time.time() + 60
    while time.time() < end and not all(call("GET", f"/v1/jobs/{j['id']}")["state"] == "running" for j in jobs):
        time.sleep(0.2)
    states = [call("GET", f"/v1/jobs/{j['id']}")["state"] for j in jobs]
    if states != ["running"] * args.jobs:
        failures.append(f"jobs not running: {states}")
    time.sleep(2)

    base_p50, base_p99, base_rps, base_bad, _ = wrk(f"/v1/models/{probe['id']}")
    base_load, base_threads = load(), threads()

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800",
              "--disable-background-networking", "--disable-component-update"]:
        opts.add_argument(a)
    drivers, tabs, followers = [], [], []  # (driver, window handle) per dashboard
    try:
        for t in range(args.tabs):
            if args.followers == "python":
                followers.append(Follower(jobs[t % args.jobs]["id"], models[t % args.jobs]["id"]))
                followers[-1].start()
                continue
            if t % args.tabs_per_browser == 0:
                drivers.append(webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts))
                driver = drivers[-1]
            else:
                driver.switch_to.new_window("tab")
            driver.get(BASE + "/ui/")
            driver.execute_script("sessionStorage.setItem('pfc.apiKey', arguments[0])", args.key)
            driver.execute_script("location.hash = arguments[0]", f"#/model/{models[t % args.jobs]['id']}")
            tabs.append((driver, driver.current_window_handle))
        time.sleep(5)
        points = lambda d: d.execute_script("const s = document.querySelector('.live-chart svg'); return s ? +s.dataset.points : -1")

        def sample():
            if followers:
                return [f.events for f in followers]
            out = []
            for d, h in tabs:
                d.switch_to.window(h)
                out.append(points(d))
            return out
        before = sample()
        streams_open = int(re.search(r"^pfc_event_streams_open (\d+)", urllib.request.urlopen(BASE + "/metrics").read().decode(), re.M).group(1))
        browser_pids = [d.service.process.pid for d in drivers]
        cpu0 = (cpu_seconds([args.pid]), cpu_seconds(browser_pids), time.time())
        p50, p99, rps, bad, raw = wrk(f"/v1/models/{probe['id']}")
        cpu1 = (cpu_seconds([args.pid]), cpu_seconds(browser_pids), time.time())
        during_load, during_threads = load(), threads()
        after = sample()
    finally:
        for f in followers:
            f.stop.set()
        for d in drivers:
            d.quit()
    wall = cpu1[2] - cpu0[2]
    server_cores, browser_cores = (cpu1[0] - cpu0[0]) / wall, (cpu1[1] - cpu0[1]) / wall
    for j in jobs:
        call("DELETE", f"/v1/jobs/{j['id']}")
    grew = sum(1 for b, a in zip(before, after) if a > b > 0)
    if grew != args.tabs:
        failures.append(f"only {grew} of {args.tabs} dashboards' live curves grew ({before} → {after})")
    if streams_open < args.tabs:
        failures.append(f"{streams_open} event streams open for {args.tabs} dashboards")
    if bad or base_bad:
        failures.append(f"non-2xx answers: {base_bad} without, {bad} with the dashboards")
    if p99 >= 50:
        failures.append(f"p99 {p99:.1f} ms ≥ 50 ms")
    who = (f"{args.tabs} tabs in {len(drivers)} headless Chromium processes ({args.tabs_per_browser} per browser: HTTP/1.1 allows 6 connections per origin "
           f"and each dashboard holds an event stream) on the model pages of the running jobs (live curves from the event stream, job list polled every 3 s)"
           if args.followers == "browser" else
           f"{args.tabs} Python followers, each doing what a model page does while its job runs (the job's event stream, read to the end, and "
           f"GET /v1/jobs?model_id= every 3 s), without a browser on the machine")
    print(f"{args.jobs} training job(s) running (digits, K 300, N 100, batch 50, one worker each at --threads 1), {args.tabs} dashboards: {who}. "
          f"wrk: {args.clients} connections, {args.duration}, GET /v1/models/{{id}} of another model.")
    print()
    print(f"CPU during the measured run (2 cores): the server {server_cores:.2f} cores (training, wrk's requests, the streams)"
          + (f", the browsers {browser_cores:.2f} cores" if drivers else "") + ".")
    print()
    print("| | p50 | p99 | req/s | load average (1/5/15 min) | server threads |")
    print("|---|---:|---:|---:|---|---:|")
    print(f"| training, no dashboard | {base_p50:.2f} ms | {base_p99:.2f} ms | {base_rps:,.0f} | {base_load} | {base_threads} |")
    print(f"| training + {args.tabs} dashboards | {p50:.2f} ms | **{p99:.2f} ms** | {rps:,.0f} | {during_load} | {during_threads} |")
    print()
    print(f"Event streams open during the run: {streams_open}. " + ("Live-curve points per tab" if drivers else "Progress events per follower")
          + " before → after the run: "
          + ", ".join(f"{b}→{a}" for b, a in zip(before, after)) + f" ({grew}/{args.tabs} grew).")
    print()
    print("wrk output (with the dashboards):\n```\n" + raw.strip() + "\n```")
    print()
    print("Result: " + ("PASS (p99 < 50 ms, every dashboard live)" if not failures else "FAIL: " + "; ".join(failures)))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
