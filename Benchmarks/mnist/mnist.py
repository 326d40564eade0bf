#!/usr/bin/env python3
"""MNIST through the REST API only (issue 17): the paper's experiments, research/pfc.md §1.3, §2.2, §3, §5.

Usage: mnist.py --server BIN [--experiment NAME ...] [--epochs N] [--out DIR]

Starts `BIN serve` on SQLite in a temporary data directory, uploads MNIST (../shared/data/mnist/, pixels
scaled to [0, 1], the paper's §1.3 preprocessing) as NDJSON, and runs each experiment with `POST /v1/models`,
`POST /v1/models/{id}/train` or `/tasks`, following the job until it ends, then scores the official test set
with `POST /v1/models/{id}/predict` in chunks. Prints one markdown table row per run (and a JSON line per run
to DIR/results.jsonl): the figure, the paper's, the protocol, and the wall time on this machine.
Nothing here touches the engine directly: what it measures is what a user of the service gets.
"""
import argparse, gzip, json, os, socket, struct, subprocess, sys, tempfile, time, urllib.request, urllib.error

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "mnist")


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        return n, rows * cols, raw[16:]
    return n, 1, raw[8:]


def load(split, data_dir):
    prefix = "train" if split == "train" else "t10k"
    n, d, images = idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    _, _, labels = idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    return n, d, images, labels


# Pixel p as p/255 with 4 significant digits: "0" for the many zeros keeps the CSV small (about 100 MB).
PIXEL = ["0" if p == 0 else ("1" if p == 255 else f"{p / 255:.4g}") for p in range(256)]


def ndjson_bytes(n, d, images, labels, rows=None):
    """NDJSON (the CSV route's 64 MiB limit is below MNIST's size): one {"features", "label"} per line."""
    rows = range(n) if rows is None else rows
    out = []
    for i in rows:
        px = images[i * d:(i + 1) * d]
        out.append('{"label":%d,"features":[%s]}' % (labels[i], ",".join(PIXEL[p] for p in px)))
    return ("\n".join(out) + "\n").encode()


class API:
    def __init__(self, base, key):
        self.base, self.key = base, key

    def call(self, method, path, body=None, content_type="application/json", timeout=600):
        data = body if isinstance(body, (bytes, bytearray)) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method} {path}: {e.code} {e.read()[:400]!r}")

    def wait(self, job_id, label):
        last = None
        while True:
            job = self.call("GET", f"/v1/jobs/{job_id}")
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            p = job.get("progress") or {}
            line = {k: p.get(k) for k in ("epoch", "epochs", "batch", "loss", "validation_accuracy", "examples_per_second", "task") if k in p}
            if line != last:
                print(f"  [{label}] {json.dumps(line)}", file=sys.stderr, flush=True)
                last = line
            time.sleep(5)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(binary, data_dir):
    port = free_port()
    log = open(os.path.join(data_dir, "server.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--port", str(port), "--data-dir", data_dir, "--no-access-log"],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except Exception:
            time.sleep(0.2)
    key = open(os.path.join(data_dir, "default-api-key")).read().strip()
    return proc, API(f"http://127.0.0.1:{port}", key)


class Session:
    """Datasets uploaded once per server, shared by the experiments."""

    def __init__(self, api, data_dir):
        self.api, self.data_dir, self.cache = api, data_dir, {}
        self.train = load("train", data_dir)
        self.test = load("test", data_dir)

    def dataset(self, name, split="train", rows=None, query=""):
        if name in self.cache:
            return self.cache[name]
        n, d, images, labels = self.train if split == "train" else self.test
        body = ndjson_bytes(n, d, images, labels, rows)
        t = time.time()
        ds = self.api.call("POST", f"/v1/datasets?name={name}{query}", body, "application/x-ndjson")
        secs = time.time() - t
        print(f"  uploaded {name}: {len(body) / 1e6:.1f} MB in {secs:.1f} s ({len(body) / 1e6 / secs:.1f} MB/s)", file=sys.stderr, flush=True)
        self.cache[name] = ds["id"]
        return ds["id"]

    def test_accuracy(self, model_id, labels_of=None, chunk=500, rows=None):
        """Accuracy of the model's latest version on the official test set (or `rows` of it)."""
        n, d, images, labels = self.test
        rows = list(range(n)) if rows is None else list(rows)
        right = 0
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            inputs = [[p / 255 for p in images[i * d:(i + 1) * d]] for i in part]
            out = self.api.call("POST", f"/v1/models/{model_id}/predict", {"inputs": inputs, "top": 1})
            right += sum(1 for i, y in zip(part, out["predictions"]) if y == labels[i])
        return right / len(rows)


def train(s, label, model, request, paper, protocol):
    t0 = time.time()
    m = s.api.call("POST", "/v1/models", model)
    job = s.api.call("POST", f"/v1/models/{m['id']}/train", request)
    job = s.api.wait(job["id"], label)
    train_secs = time.time() - t0
    if job["state"] != "succeeded":
        raise SystemExit(f"{label}: job {job['state']}: {job.get('error')}")
    acc = s.test_accuracy(m["id"])
    metrics = (job.get("result") or {}).get("metrics") or {}
    return {"experiment": label, "test_accuracy": round(acc, 4), "paper": paper, "protocol": protocol,
            "epochs_run": metrics.get("epochs_run", metrics.get("epochs")), "wall_seconds": round(train_secs),
            "metrics": metrics, "model_id": m["id"]}


def exp_small(s, a):
    ds = s.dataset("mnist-train")
    return [train(s, "small: PFC K 100", {"name": "small", "kind": "pfc", "input_dim": 784, "output_dim": 10, "basis": 100,
                  "iterations": 100, "loss": "images_labels_mse", "label_loss_weight": 0.5, "seed": a.seed},
                  {"dataset_id": ds, "epochs": 5, "batch_size": 50, "learning_rate": 1e-3, "seed": a.seed},
                  0.9497, "§5.1: K 100, N 100, 5 epochs, lr 1e-3, batch 50, images+labels MSE λ 0.5")]


def exp_mlp(s, a):
    ds = s.dataset("mnist-train")
    rows = []
    for k in a.sizes:
        common = {"dataset_id": ds, "epochs": a.epochs, "batch_size": 200, "weight_decay": 1e-4, "seed": a.seed}
        rows.append(train(s, f"PFC K {k}", {"name": f"pfc{k}", "kind": "pfc", "input_dim": 784, "output_dim": 10, "basis": k,
                          "iterations": 100, "seed": a.seed}, {**common, "learning_rate": 3e-4},
                          "competitive", f"§1.3 defaults (batch 200, lr 3e-4, wd 1e-4, N 100, best val-loss checkpoint), {a.epochs} epochs"))
        rows.append(train(s, f"MLP h {k}", {"name": f"mlp{k}", "kind": "mlp", "input_dim": 784, "output_dim": 10, "hidden": k,
                          "seed": a.seed}, {**common, "learning_rate": 1e-4},
                          "–", f"§1.3 MLP (GELU, lr 1e-4, wd 1e-4), {a.epochs} epochs"))
    return rows


def exp_seq(s, a):
    ds = s.dataset("mnist-train-seq", query="&sequence_length=28&step_features=28")
    common = {"dataset_id": ds, "epochs": a.epochs, "batch_size": 200, "seed": a.seed}
    return [
        train(s, "seqMNIST factorized RNN K 512 BPTT", {"name": "frnn", "kind": "factorized_rnn", "input_dim": 28, "sequence_length": 28,
              "output_dim": 10, "basis": 512, "iterations": 10, "bptt": True, "nonnegative": False, "seed": a.seed},
              {**common, "learning_rate": a.seq_lr}, 0.9816, f"§5.4 row 8: K 512, N 10, BPTT, ± weights, {a.epochs} epochs"),
        train(s, "seqMNIST vanilla RNN 512 BPTT", {"name": "rnn", "kind": "rnn", "input_dim": 28, "sequence_length": 28,
              "output_dim": 10, "hidden": 512, "bptt": True, "seed": a.seed},
              {**common, "learning_rate": a.seq_lr}, 0.9794, f"§5.4 row 13: h 512, BPTT, {a.epochs} epochs"),
    ]


EXPERIMENTS = {"small": exp_small, "mlp": exp_mlp, "seq": exp_seq}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--experiment", action="append", choices=sorted(EXPERIMENTS) + ["all"])
    p.add_argument("--epochs", type=int, default=10, help="epoch budget of the mlp and seq experiments")
    p.add_argument("--sizes", type=int, nargs="+", default=[300], help="K = h of the PFC-vs-MLP runs")
    p.add_argument("--seq-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=DATA)
    p.add_argument("--out", default=None, help="append a JSON line per run to OUT/results.jsonl")
    a = p.parse_args()
    names = a.experiment or ["small"]
    if "all" in names:
        names = sorted(EXPERIMENTS)
    data_dir = tempfile.mkdtemp(prefix="pfc-mnist-")
    proc, api = start_server(a.server, data_dir)
    try:
        s = Session(api, a.data)
        print("| experiment | test accuracy | paper | protocol | epochs run | wall time (train) |")
        print("|---|---|---|---|---|---|")
        for name in names:
            for row in EXPERIMENTS[name](s, a):
                print(f"| {row['experiment']} | {row['test_accuracy']:.4f} | {row['paper']} | {row['protocol']} | "
                      f"{row['epochs_run']} | {row['wall_seconds']} s |", flush=True)
                if a.out:
                    with open(os.path.join(a.out, "results.jsonl"), "a") as f:
                        f.write(json.dumps(row) + "\n")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
