#!/usr/bin/env python3
"""Upload throughput of MNIST's training set (60,000 × 784) through POST /v1/datasets, end to end
(request sent → 201 received), in each body format: .npy (uint8, ?scale=1/255), CSV of integer
pixels, CSV of pixels scaled to [0, 1] (4 significant digits), NDJSON of scaled pixels.

    upload.py --server BIN [--repeat 3] [--only npy,csv] [--postgres URL]
Prints a markdown table: format, body size, best and median seconds of the runs, MB/s (best), and the
server's CPU seconds for the best run (user + system, all threads, from /proc) with the MB per CPU second
they give: on a shared, loaded machine the wall time mostly measures the wait for a core. The store is
the default SQLite file in a fresh data directory, or PostgreSQL with --postgres (PFC_DATABASE_URL).
"""
import argparse, gzip, os, socket, statistics, struct, subprocess, sys, tempfile, time, http.client

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "mnist")


def idx(path):
    raw = gzip.open(path, "rb").read()
    magic, n = struct.unpack(">II", raw[:8])
    return (n, raw[16:]) if magic == 2051 else (n, raw[8:])


def bodies(data_dir):
    n, images = idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    _, labels = idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    d = 784
    rows = bytearray()
    for i in range(n):
        rows.append(labels[i])
        rows += images[i * d:(i + 1) * d]
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d + 1)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(rows)
    scaled = ["0" if p == 0 else ("1" if p == 255 else f"{p / 255:.4g}") for p in range(256)]
    ints = [str(p) for p in range(256)]
    csv_int, csv_scaled, ndjson = [], [], []
    for i in range(n):
        px = images[i * d:(i + 1) * d]
        csv_int.append(str(labels[i]) + "," + ",".join(ints[p] for p in px))
        feats = ",".join(scaled[p] for p in px)
        csv_scaled.append(str(labels[i]) + "," + feats)
        ndjson.append('{"label":%d,"features":[%s]}' % (labels[i], feats))
    return [
        (".npy uint8, scale 1/255", "application/x-npy", "&scale=1/255", npy),
        ("CSV, integer pixels", "text/csv", "", ("\n".join(csv_int) + "\n").encode()),
        ("CSV, pixels / 255", "text/csv", "", ("\n".join(csv_scaled) + "\n").encode()),
        ("NDJSON, pixels / 255", "application/x-ndjson", "", ("\n".join(ndjson) + "\n").encode()),
    ]


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--server", required=True)
    a.add_argument("--repeat", type=int, default=3)
    a.add_argument("--data", default=DATA)
    a.add_argument("--only", default="", help="comma-separated substrings: run only the formats whose label contains one")
    a.add_argument("--postgres", default="", help="a postgres:// URL: store in PostgreSQL instead of SQLite")
    args = a.parse_args()
    env = dict(os.environ)
    env.pop("PFC_DATABASE_URL", None)
    if args.postgres:
        env["PFC_DATABASE_URL"] = args.postgres
    data_dir = tempfile.mkdtemp(prefix="pfc-upload-")
    port = free_port()
    proc = subprocess.Popen([args.server, "serve", "--port", str(port), "--data-dir", data_dir],
                            stdout=open(os.path.join(data_dir, "log"), "w"), stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1); c.request("GET", "/healthz"); c.getresponse().read(); break
            except OSError:
                time.sleep(0.2)
        key = open(os.path.join(data_dir, "default-api-key")).read().strip()
        print("| format | body | best | median | MB/s (best) | server CPU (best run) | MB per CPU s |")
        print("|---|---|---|---|---|---|---|")
        only = [o.strip().lower() for o in args.only.split(",") if o.strip()]
        for label, ctype, query, body in bodies(args.data):
            if only and not any(o in label.lower() for o in only):
                continue
            times, cpus = [], []
            for r in range(args.repeat):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                c0 = cpu_seconds(proc.pid)
                t = time.perf_counter()
                conn.request("POST", f"/v1/datasets?name=mnist-{r}{query}", body=body,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": ctype})
                resp = conn.getresponse(); payload = resp.read()
                times.append(time.perf_counter() - t)
                cpus.append(cpu_seconds(proc.pid) - c0)
                if resp.status != 201:
                    sys.exit(f"{label}: {resp.status} {payload[:300]!r}")
                conn.close()
            mb = len(body) / 1e6
            best = min(range(len(times)), key=times.__getitem__)
            cpu = cpus[best]
            print(f"| {label} | {mb:.1f} MB | {times[best]:.2f} s | {statistics.median(times):.2f} s | {mb / times[best]:.0f} "
                  f"| {cpu:.2f} s | {mb / cpu if cpu > 0 else float('inf'):.0f} |", flush=True)
    finally:
        proc.terminate(); proc.wait(timeout=60)


if __name__ == "__main__":
    main()
