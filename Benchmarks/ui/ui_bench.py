#!/usr/bin/env python3
"""Benchmarks/ui/run.sh's measurement: N dashboards (tabs of one headless Chromium) on the model pages of
running training jobs while wrk measures an unrelated authenticated GET. See run.sh."""
import argparse
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
    for i in range(2):  # two running jobs (2 workers); the dashboards split between them
        m = call("POST", "/v1/models", {"name": f"ui-bench-{i}", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 300, "iterations": 100})
        j = call("POST", f"/v1/models/{m['id']}/train", {"dataset_id": ds["id"], "epochs": 1000, "batch_size": 50, "learning_rate": 0.002,
                                                          "validation_fraction": 0.1, "early_stopping": None})
        models.append(m)
        jobs.append(j)
    end = time.time() + 60
    while time.time() < end and not all(call("GET", f"/v1/jobs/{j['id']}")["state"] == "running" for j in jobs):
        time.sleep(0.2)
    states = [call("GET", f"/v1/jobs/{j['id']}")["state"] for j in jobs]
    if states != ["running", "running"]:
        failures.append(f"jobs not running: {states}")
    time.sleep(2)

    base_p50, base_p99, base_rps, base_bad, _ = wrk(f"/v1/models/{probe['id']}")
    base_load, base_threads = load(), threads()

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800",
              "--disable-background-networking", "--disable-component-update", "--disable-background-timer-throttling",
              "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"]:
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(BASE + "/ui/")
        driver.execute_script("sessionStorage.setItem('pfc.apiKey', arguments[0])", args.key)
        handles = [driver.current_window_handle]
        for _ in range(args.tabs - 1):
            driver.switch_to.new_window("tab")
            driver.get(BASE + "/ui/")
            driver.execute_script("sessionStorage.setItem('pfc.apiKey', arguments[0])", args.key)
            handles.append(driver.current_window_handle)
        for i, h in enumerate(handles):
            driver.switch_to.window(h)
            driver.execute_script("location.hash = arguments[0]", f"#/model/{models[i % 2]['id']}")
        time.sleep(5)
        points = lambda: driver.execute_script("const s = document.querySelector('.live-chart svg'); return s ? +s.dataset.points : -1")
        before = []
        for h in handles:
            driver.switch_to.window(h)
            before.append(points())
        streams_open = int(re.search(r"^pfc_event_streams_open (\d+)", urllib.request.urlopen(BASE + "/metrics").read().decode(), re.M).group(1))
        p50, p99, rps, bad, raw = wrk(f"/v1/models/{probe['id']}")
        during_load, during_threads = load(), threads()
        after = []
        for h in handles:
            driver.switch_to.window(h)
            after.append(points())
    finally:
        driver.quit()
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
    print(f"Two training jobs running (digits, K 300, N 100, batch 50), {args.tabs} dashboards: {args.tabs} tabs of one headless Chromium "
          f"on the two models' pages (live curves from the event stream, job list polled every 3 s). wrk: {args.clients} connections, {args.duration}, "
          "GET /v1/models/{id} of a third model.")
    print()
    print("| | p50 | p99 | req/s | load average (1/5/15 min) | server threads |")
    print("|---|---:|---:|---:|---|---:|")
    print(f"| training, no dashboard | {base_p50:.2f} ms | {base_p99:.2f} ms | {base_rps:,.0f} | {base_load} | {base_threads} |")
    print(f"| training + {args.tabs} dashboards | {p50:.2f} ms | **{p99:.2f} ms** | {rps:,.0f} | {during_load} | {during_threads} |")
    print()
    print(f"Event streams open during the run: {streams_open}. Live-curve points per tab before → after the run: "
          + ", ".join(f"{b}→{a}" for b, a in zip(before, after)) + f" ({grew}/{args.tabs} grew).")
    print()
    print("wrk output (with the dashboards):\n```\n" + raw.strip() + "\n```")
    print()
    print("Result: " + ("PASS (p99 < 50 ms, every dashboard live)" if not failures else "FAIL: " + "; ".join(failures)))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
