#!/usr/bin/env python3
"""Soak test: two pfc-server replicas on one PostgreSQL under bounded mixed traffic and faults.

Run through Benchmarks/soak/run.sh (which starts a throwaway PostgreSQL with
scripts/with-postgres.sh and exports PFC_TEST_DATABASE_URL and PFC_TEST_PG_RESTART).
Python standard library only; talks to 127.0.0.1 only; every request has a timeout; the load
stops by itself after --minutes.

What it does
  * creates two tenants with `pfc-server keys create`, starts replica-a and replica-b on the
    same database (same flags), and drives a fixed number of client threads (closed loop: each
    thread waits for its job before it submits the next one, so the queue stays bounded):
    dataset uploads (JSON, CSV, chunked NDJSON), model creation and deletion, training jobs,
    continual-learning task jobs, streamed tasks (chunked NDJSON), forget (real and dry runs),
    NPEFF analyses with fits and perturbations, SSE job event streams (read a while, then
    disconnect), predict and GETs, cross-tenant probes (must be 404);
  * faults: `kill -9` of a replica every --kill-every seconds (alternating a, b, a, ...), restarted
    with the same flags after --restart-delay seconds; one PostgreSQL restart at mid-run;
  * samples VmRSS of every replica process every 10 s;
  * after the load: waits until every job is terminal (both replicas up), then verifies from the
    API and the database: jobs submitted/succeeded/failed/cancelled, run twice, lost, every model
    version's checksum (CRC-32 of the model file stored in model_versions.weights) and every
    dataset's SHA-256, memory growth;
  * prints the report, writes it to --out, exits 1 on run-twice > 0, lost > 0, a checksum
    mismatch, a consistency violation, or a replica that died without being killed (crash).
"""
import argparse
import collections
import csv
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib

HOST = "127.0.0.1"
TERMINAL = ("succeeded", "failed", "cancelled")


def now():
    return time.monotonic()


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------------------------
# Database access through psql (read-only queries, for the end-of-run verification and to see
# which jobs a replica was running when it was killed).

class DB:
    def __init__(self, url):
        self.url = url

    def rows(self, sql, timeout=120):
        # Unit and record separators: values (error messages) may hold tabs and newlines.
        out = subprocess.run(["psql", self.url, "-X", "-q", "-At", "-F", "\x1f", "-R", "\x1e", "-v", "ON_ERROR_STOP=1",
                              "-c", sql], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return [rec.split("\x1f") for rec in out.stdout.rstrip("\n").split("\x1e") if rec != ""]

    def stream(self, sql, timeout=600):
        """Yields rows of a big result one line at a time (COPY ... TO STDOUT, tab-separated)."""
        proc = subprocess.Popen(["psql", self.url, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line:
                yield line.split("\t")
        proc.wait(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.read().strip()}")


# --------------------------------------------------------------------------------------------
# Replicas

class Replica:
    def __init__(self, name, binary, url, lease, threads, workdir, extra, env=None):
        self.name, self.binary, self.url = name, binary, url
        self.env = dict(os.environ, **(env or {}))
        self.extra_env = env or {}
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = os.path.join(self.dir, "server.log")
        self.args = [binary, "serve", "--host", HOST, "--port", str(self.port), "--database-url", url,
                     "--data-dir", self.dir, "--lease-seconds", str(lease), "--instance-id", name,
                     "--threads", str(threads)] + extra
        self.proc = None
        self.lock = threading.RLock()
        self.state = "down"           # up | killed | crashed | starting | stopped
        self.segments = []            # one per process lifetime
        self.windows = []             # (t0, t1) when the replica was down because we killed it
        self.crashes = []
        self.inflight = {}            # request id -> (t, method, path, body excerpt)
        self.inflight_lock = threading.Lock()

    def start(self, reason):
        with self.lock:
            self.state = "starting"
            log = open(self.logpath, "ab")
            log.write(f"\n===== soak: start ({reason}) at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
            log.close()
            seg = {"pid": self.proc.pid, "t0": now(), "t1": None, "samples": [], "end": None, "reason": reason}
            self.segments.append(seg)
        deadline = now() + 90
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=2)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    with self.lock:
                        self.state = "up"
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log_tail()}")

    def kill9(self):
        with self.lock:
            self.state = "killed"
            t = now()
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
            seg = self.segments[-1]
            seg["t1"], seg["end"] = t, "kill -9 (soak)"
            return t

    def stop(self, timeout):
        """SIGTERM; returns (exit code or None, seconds)."""
        with self.lock:
            self.state = "stopped"
            if self.proc is None or self.proc.poll() is not None:
                return (self.proc.returncode if self.proc else None, 0.0)
            t0 = now()
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
            seg = self.segments[-1]
            seg["t1"], seg["end"] = now(), "SIGTERM (end of soak)"
            return rc, now() - t0

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def crash_excerpt(self):
        """The log of the process that just died: the lines around the first crash marker (Swift's fatal error
        and backtrace header, the crashed thread's frames), the access-log lines before it, and the tail."""
        try:
            with open(self.logpath, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"
        seg = text.rsplit("===== soak: start", 1)[-1].splitlines()
        marks = [i for i, line in enumerate(seg) if "Fatal error" in line or "*** Program crashed" in line
                 or "*** Signal" in line or " crashed:" in line or "fatal error" in line]
        if not marks:
            return "\n".join(seg[-80:])
        i = marks[0]
        out = seg[max(0, i - 12):i + 5]
        crashed = [j for j, line in enumerate(seg) if " crashed:" in line]
        if crashed:
            out += ["[...]"] + seg[crashed[0]:crashed[0] + 30]
        return "\n".join(out + ["[... last lines]"] + seg[-5:])

    def log_tail(self, lines=60):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 200_000))
                text = f.read().decode("utf-8", "replace")
            return "\n".join(text.splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"


# --------------------------------------------------------------------------------------------
# Statistics

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.records = []                                   # (t, route, status, seconds, replica)
        self.samples = collections.defaultdict(list)        # (route, status) -> [message] (unexpected answers)
        self.unexpected = collections.Counter()              # (route, status) -> count of unexpected answers
        self.server_errors = []                              # 5xx: (t, replica, method, path, body, status, answer)
        self.conn_samples = []                               # (wall, t, replica, method, path, error, seconds, kind)
        self.unknown_outcome = collections.Counter()         # route -> POSTs with no answer (connection lost after sending)
        self.client_exceptions = collections.Counter()
        self.client_exception_samples = {}
        self.sse = collections.Counter()
        self.cross_tenant = collections.Counter()

    def add(self, route, status, seconds, replica):
        with self.lock:
            self.records.append((now(), route, status, seconds, replica))

    def sample(self, route, status, message):
        with self.lock:
            self.unexpected[(route, status)] += 1
            lst = self.samples[(route, status)]
            if len(lst) < 4 and message not in lst:
                lst.append(message)

    def exception(self, where, exc):
        key = f"{where}: {type(exc).__name__}"
        with self.lock:
            self.client_exceptions[key] += 1
            self.client_exception_samples.setdefault(key, "".join(traceback.format_exception(exc))[-1500:])


# --------------------------------------------------------------------------------------------
# HTTP client with replica fail-over

class NoAnswer(Exception):
    """The request was sent but no answer came (connection reset, timeout): outcome unknown."""


class Client:
    def __init__(self, replicas, stats):
        self.replicas, self.stats = replicas, stats
        self.counter = 0
        self.lock = threading.Lock()

    def next_id(self):
        with self.lock:
            self.counter += 1
            return f"soak-{self.counter}"

    def call(self, key, method, route, path, body=None, ctype="application/json", timeout=30, retry=None,
             raw=False, headers=None):
        """Returns (status, parsed body, replica name). `retry` (default: GETs and DELETEs) allows a second
        replica after an error once the request was sent; a refused connection always fails over."""
        if retry is None:
            retry = method in ("GET", "DELETE")
        order = self.replicas[:]
        random.shuffle(order)
        last_error = None
        for rep in order:
            rid = self.next_id()
            hdrs = {"Authorization": f"Bearer {key}", "X-Request-Id": rid}
            if headers:
                hdrs.update(headers)
            data = body
            if body is not None and not isinstance(body, (bytes, str)) and not callable(body):
                data = json.dumps(body).encode()
            if callable(data):                       # a generator factory: chunked body
                data = data()
            if data is not None:
                hdrs["Content-Type"] = ctype
            excerpt = data[:300] if isinstance(data, (bytes, str)) else "(chunked body)"
            t0 = now()
            with rep.inflight_lock:
                rep.inflight[rid] = (time.strftime("%H:%M:%S"), method, path, excerpt)
            sent = False
            conn = http.client.HTTPConnection(HOST, rep.port, timeout=timeout)
            try:
                conn.connect()
                sent = True
                conn.request(method, path, body=data, headers=hdrs, encode_chunked=False)
                resp = conn.getresponse()
                payload = resp.read()
                dt = now() - t0
                status = resp.status
                self.stats.add(route, status, dt, rep.name)
                ctype_out = resp.headers.get("Content-Type", "")
                parsed = payload
                if not raw and ctype_out.startswith("application/json") and payload:
                    try:
                        parsed = json.loads(payload)
                    except ValueError:
                        parsed = payload
                if status >= 500:
                    with self.stats.lock:
                        self.stats.server_errors.append((time.strftime("%H:%M:%S"), now(), rep.name, method, path, excerpt,
                                                         status, payload[:500].decode("utf-8", "replace"), rid))
                return status, parsed, rep.name
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError, http.client.HTTPException,
                    socket.timeout, TimeoutError, OSError) as e:
                dt = now() - t0
                kind = "timeout" if isinstance(e, (socket.timeout, TimeoutError)) else "conn_error"
                if isinstance(e, ConnectionRefusedError):
                    kind, sent = "conn_refused", False
                self.stats.add(route, kind, dt, rep.name)
                with self.stats.lock:
                    if len(self.stats.conn_samples) < 2000:
                        self.stats.conn_samples.append((time.strftime("%H:%M:%S"), now(), rep.name, method, path, repr(e)[:200],
                                                        dt, kind))
                last_error = e
                if sent and not retry:
                    with self.stats.lock:
                        self.stats.unknown_outcome[route] += 1
                    raise NoAnswer(f"{method} {path} on {rep.name}: {e!r}")
            finally:
                conn.close()
                with rep.inflight_lock:
                    rep.inflight.pop(rid, None)
        raise NoAnswer(f"{method} {path}: every replica failed: {last_error!r}")

    def sse(self, key, job_id, read_seconds):
        """Opens the job's event stream on a random replica, reads up to read_seconds, disconnects.
        Returns the final job JSON if the `end` event arrived, else None."""
        rep = random.choice(self.replicas)
        route = "GET /v1/jobs/{id}/events"
        rid = self.next_id()
        t0 = now()
        conn = http.client.HTTPConnection(HOST, rep.port, timeout=min(read_seconds, 20) + 5)
        with rep.inflight_lock:
            rep.inflight[rid] = (time.strftime("%H:%M:%S"), "GET", f"/v1/jobs/{job_id}/events", "")
        try:
            conn.request("GET", f"/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {key}",
                                                                       "X-Request-Id": rid})
            resp = conn.getresponse()
            self.stats.add(route, resp.status, now() - t0, rep.name)
            if resp.status != 200:
                resp.read()
                self.stats.sample(route, resp.status, "")
                return None
            deadline = now() + read_seconds
            event, data = None, []
            while now() < deadline:
                # The read window is the socket timeout: a socket file that timed out cannot be read again,
                # so a timeout here ends the stream (the client disconnects).
                conn.sock.settimeout(max(0.05, deadline - now()))
                try:
                    line = resp.fp.readline()
                except (socket.timeout, TimeoutError):
                    break
                if not line:
                    with self.stats.lock:
                        self.stats.sse["closed by server before end"] += 1
                    return None
                line = line.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    with self.stats.lock:
                        self.stats.sse["comments"] += 1
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and event:
                    with self.stats.lock:
                        self.stats.sse[f"event {event}"] += 1
                    if event == "end":
                        with self.stats.lock:
                            self.stats.sse["streams that reached end"] += 1
                        return json.loads("\n".join(data))
                    event, data = None, []
            with self.stats.lock:
                self.stats.sse["streams disconnected by the client"] += 1
            return None
        except (ConnectionRefusedError,) as e:
            self.stats.add(route, "conn_refused", now() - t0, rep.name)
        except (OSError, http.client.HTTPException) as e:
            kind = "timeout" if isinstance(e, (socket.timeout, TimeoutError)) else "conn_error"
            self.stats.add(route, kind, now() - t0, rep.name)
            with self.stats.lock:
                self.stats.conn_samples.append((time.strftime("%H:%M:%S"), now(), rep.name, "GET",
                                                f"/v1/jobs/{job_id}/events", repr(e)[:200], now() - t0, kind))
        finally:
            conn.close()
            with rep.inflight_lock:
                rep.inflight.pop(rid, None)
        return None


# --------------------------------------------------------------------------------------------
# Data

def load_digits(path):
    rows, labels = [], []
    with open(path) as f:
        for rec in csv.reader(f):
            if not rec or not rec[0].strip().lstrip("-").isdigit():
                continue
            labels.append(int(rec[0]))
            rows.append([float(x) for x in rec[1:]])
    return rows, labels


def csv_text(rows, labels):
    return "".join(f"{y}," + ",".join(f"{v:g}" for v in r) + "\n" for r, y in zip(rows, labels)).encode()


def ndjson_chunks(rows, labels, lines_per_chunk=10, pause=0.0):
    def gen():
        buf = []
        for r, y in zip(rows, labels):
            buf.append(json.dumps({"features": r, "label": y}) + "\n")
            if len(buf) >= lines_per_chunk:
                yield "".join(buf).encode()
                buf = []
                if pause:
                    time.sleep(pause)
        if buf:
            yield "".join(buf).encode()
    return gen


# --------------------------------------------------------------------------------------------
# Tenants and the load

class Tenant:
    def __init__(self, name, key, tid):
        self.name, self.key, self.id = name, key, tid
        self.lock = threading.Lock()
        self.train_datasets = []     # ids usable for training (64 features, image 8x8)
        self.eval_dataset = None
        self.pair_datasets = []      # task datasets (two digits each)
        self.models = {}             # id -> {"kind", "trained": bool}
        self.trained = []            # trained PFC model ids (for analyses, predict)
        self.analyses = []           # ready analysis ids
        self.jobs = []


class Load:
    def __init__(self, args, client, stats, tenants, digits):
        self.args, self.client, self.stats, self.tenants = args, client, stats, tenants
        self.rows, self.labels = digits
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.jobs = {}               # job id -> {"kind", "tenant", "model", "op", "submitted", "final"}
        self.stream_tasks = collections.Counter()     # model id -> streamed tasks answered 201
        self.forgets = collections.Counter()          # model id -> forget answers with version_created
        self.unknown = collections.defaultdict(collections.Counter)   # model id -> op -> no-answer count
        self.deleted_models = set()
        self.fit_jobs = {}           # job id -> analysis id
        self.ops = collections.Counter()
        self.cancelled = set()

    # --- helpers
    def count(self, op):
        with self.lock:
            self.ops[op] += 1

    def subset(self, n, labels=None):
        idx = [i for i, y in enumerate(self.labels) if labels is None or y in labels]
        pick = random.sample(idx, min(n, len(idx)))
        return [self.rows[i] for i in pick], [self.labels[i] for i in pick]

    def expect(self, status, want, route, body):
        if status not in want:
            msg = body.get("error", {}).get("message", "") if isinstance(body, dict) else str(body)[:200]
            self.stats.sample(route, status, msg[:300])
            return False
        return True

    def sleep(self, a, b):
        self.stop.wait(random.uniform(a, b))

    def record_job(self, job, kind, tenant, model, op):
        with self.lock:
            self.jobs[job["id"]] = {"kind": kind, "tenant": tenant.name, "model": model, "op": op,
                                    "submitted": now(), "final": None}
        self.count(f"{op} submitted")

    def watch(self, tenant, job_id, max_seconds=600, sse_chance=0.5, cancel_after=None):
        """Follows a job to a terminal state: an SSE stream for a while (sometimes), then polling."""
        deadline = now() + max_seconds
        final = None
        if random.random() < sse_chance:
            final = self.client.sse(tenant.key, job_id, random.uniform(1.5, 8.0))
        cancel_at = now() + cancel_after if cancel_after is not None else None
        while final is None and now() < deadline:
            if cancel_at and now() >= cancel_at:
                cancel_at = None
                try:
                    s, b, _ = self.client.call(tenant.key, "DELETE", "DELETE /v1/jobs/{id}", f"/v1/jobs/{job_id}")
                    if self.expect(s, (200,), "DELETE /v1/jobs/{id}", b):
                        self.cancelled.add(job_id)
                except NoAnswer:
                    pass
            try:
                s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/jobs/{id}", f"/v1/jobs/{job_id}")
                if s == 200 and b.get("state") in TERMINAL:
                    final = b
                    break
                self.expect(s, (200,), "GET /v1/jobs/{id}", b)
            except NoAnswer:
                pass
            # After the load stops, keep following for a short while only; the final check waits for the rest.
            if self.stop.is_set() and now() > deadline - max_seconds + 5:
                break
            time.sleep(random.uniform(0.4, 1.0))
        if final:
            with self.lock:
                self.jobs[job_id]["final"] = final
            self.count(f"{self.jobs[job_id]['op']} {final['state']}")
        return final

    def create_model(self, tenant, kind="pfc", basis=None, iterations=None, name="m"):
        body = {"name": f"{name}-{random.randrange(1 << 20)}", "kind": kind, "input_dim": 64, "output_dim": 10,
                "basis": basis or random.choice([32, 48, 64]), "iterations": iterations or random.choice([10, 20, 30]),
                "seed": random.randrange(1000)}
        if kind == "mlp":
            body.pop("iterations")
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models", "/v1/models", body)
        if self.expect(s, (201,), "POST /v1/models", b):
            with tenant.lock:
                tenant.models[b["id"]] = {"kind": kind}
            return b["id"]
        return None

    # --- setup (before the clock starts)
    def setup(self, tenant):
        rows, labels = self.subset(300)
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/datasets (csv)", "/v1/datasets?name=train&image_shape=8,8",
                                   csv_text(rows, labels), ctype="text/csv", retry=True)
        assert s == 201, (s, b)
        tenant.train_datasets.append(b["id"])
        rows, labels = self.subset(200)
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/datasets (json)", "/v1/datasets",
                                   {"name": "eval", "features": rows, "labels": labels, "image_shape": [8, 8]}, retry=True)
        assert s == 201, (s, b)
        tenant.eval_dataset = b["id"]
        for pair in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)):
            rows, labels = self.subset(120, pair)
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/datasets (json)", "/v1/datasets",
                                       {"name": f"pair{pair}", "features": rows, "labels": labels, "image_shape": [8, 8]},
                                       retry=True)
            assert s == 201, (s, b)
            tenant.pair_datasets.append(b["id"])

    # --- client threads
    def run_thread(self, name, fn, tenant):
        while not self.stop.is_set():
            try:
                fn(tenant)
            except NoAnswer:
                self.sleep(0.2, 0.5)
            except Exception as e:   # a bug in this script or an answer it did not expect
                self.stats.exception(name, e)
                self.sleep(0.5, 1.0)

    def trainer(self, tenant):
        model = getattr(self, f"_model_{tenant.name}", None)
        if model is None or random.random() < 0.12:
            kind = random.choices(["pfc", "pfc2", "mlp"], [0.7, 0.15, 0.15])[0]
            model = self.create_model(tenant, kind, name="train")
            setattr(self, f"_model_{tenant.name}", model)
            if model is None:
                return
        long_job = random.random() < 0.2
        ds, own_ds = random.choice(tenant.train_datasets), None
        if long_job and random.random() < 0.3:
            # A dataset of its own, deleted while the job uses it (must be 409), and after it (204).
            rows, labels = self.subset(150)
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/datasets (json)", "/v1/datasets",
                                       {"name": "own", "features": rows, "labels": labels, "image_shape": [8, 8]})
            if self.expect(s, (201,), "POST /v1/datasets (json)", b):
                ds = own_ds = b["id"]
        body = {"dataset_id": ds, "epochs": random.randint(2, 4), "batch_size": 50, "learning_rate": 0.002,
                "seed": random.randrange(100)}
        if long_job:
            body.update({"epochs": 250, "batch_size": 10, "early_stopping": None})
        # Sometimes two jobs on the same model at once (they may run on both replicas concurrently).
        n_jobs = 2 if not long_job and random.random() < 0.15 else 1
        ids = []
        for _ in range(n_jobs):
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/train", f"/v1/models/{model}/train", body)
            if not self.expect(s, (202,), "POST /v1/models/{id}/train", b):
                if s == 404:
                    setattr(self, f"_model_{tenant.name}", None)
                self.sleep(0.5, 1)
                break
            self.record_job(b, "train", tenant, model, "train" if n_jobs == 1 else "train (2 at once)")
            ids.append(b["id"])
        if own_ds and ids:
            s, b, _ = self.client.call(tenant.key, "DELETE", "DELETE /v1/datasets/{id} (in use)", f"/v1/datasets/{own_ds}")
            self.count(f"delete of a dataset in use: {s}")
        cancel = random.uniform(1, 3) if long_job and random.random() < 0.15 else None
        finals = [self.watch(tenant, jid, cancel_after=cancel, sse_chance=0.5 if i == 0 else 0) for i, jid in enumerate(ids)]
        if own_ds:
            s, b, _ = self.client.call(tenant.key, "DELETE", "DELETE /v1/datasets/{id}", f"/v1/datasets/{own_ds}")
            self.expect(s, (204, 404), "DELETE /v1/datasets/{id}", b)
        if any(f and f["state"] == "succeeded" for f in finals):
            with tenant.lock:
                tenant.models[model]["trained"] = True
                if tenant.models[model]["kind"] in ("pfc", "pfc2") and model not in tenant.trained:
                    tenant.trained.append(model)
            rows, _ = self.subset(5)
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/predict", f"/v1/models/{model}/predict",
                                       {"inputs": rows, "top": 3})
            self.expect(s, (200,), "POST /v1/models/{id}/predict", b)
            s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}/versions", f"/v1/models/{model}/versions")
            self.expect(s, (200,), "GET /v1/models/{id}/versions", b)
        self.sleep(0.1, 0.5)

    def continual(self, tenant):
        """Task jobs (SLW) on a model of its own, then forget on it."""
        st = getattr(self, f"_cont_{tenant.name}", None)
        if st is None or st["tasks"] >= 6:
            m = self.create_model(tenant, "pfc", basis=64, iterations=20, name="tasks")
            if m is None:
                return
            st = {"model": m, "tasks": 0}
            setattr(self, f"_cont_{tenant.name}", st)
        m = st["model"]
        ds = tenant.pair_datasets[st["tasks"] % len(tenant.pair_datasets)]
        body = {"name": f"t{st['tasks']}", "dataset_id": ds, "epochs": 2, "batch_size": 20, "learning_rate": 0.004,
                "window": 8, "slide": 0.25, "seed": random.randrange(100)}
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/tasks", f"/v1/models/{m}/tasks", body)
        if not self.expect(s, (202,), "POST /v1/models/{id}/tasks", b):
            st["tasks"] = 99 if s == 422 else st["tasks"]
            self.sleep(0.5, 1)
            return
        st["tasks"] += 1
        self.record_job(b, "task", tenant, m, "task")
        final = self.watch(tenant, b["id"])
        if not final or final["state"] != "succeeded":
            return
        s, tasks, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}/tasks", f"/v1/models/{m}/tasks")
        self.expect(s, (200,), "GET /v1/models/{id}/tasks", tasks)
        if st["tasks"] >= 2 and s == 200 and tasks.get("items"):
            self.forget(tenant, m, tasks["items"])

    def forget(self, tenant, m, task_items):
        task = random.choice(task_items)["task"]
        s, led, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}/ledger", f"/v1/models/{m}/ledger?task={task}")
        self.expect(s, (200,), "GET /v1/models/{id}/ledger", led)
        r = random.random()
        if r < 0.4 and s == 200 and led.get("items"):
            body = {"batches": [e["id"] for e in random.sample(led["items"], min(2, len(led["items"])))]}
        elif r < 0.7:
            body = {"task": task}
        else:
            trained_on = [t.get("dataset_id") for t in task_items if t.get("dataset_id")]
            body = {"dataset_id": random.choice(trained_on)} if trained_on else {"task": task}
        dry = random.random() < 0.3
        body["dry_run"] = dry
        if random.random() < 0.5:
            body["evaluate_on"] = tenant.eval_dataset
        try:
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/forget", f"/v1/models/{m}/forget", body,
                                       timeout=60)
        except NoAnswer:
            if not dry:
                self.unknown[m]["forget"] += 1
            raise
        if self.expect(s, (200,), "POST /v1/models/{id}/forget", b):
            self.count("forget ok")
            if b.get("version_created"):
                with self.lock:
                    self.forgets[m] += 1
        s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}/forgets", f"/v1/models/{m}/forgets")
        self.expect(s, (200,), "GET /v1/models/{id}/forgets", b)

    def streamer(self, tenant):
        """Streamed tasks (chunked NDJSON body) on a model of its own, sometimes followed by a forget."""
        st = getattr(self, f"_stream_{tenant.name}", None)
        if st is None or st["tasks"] >= 6:
            m = self.create_model(tenant, "pfc", basis=64, iterations=20, name="stream")
            if m is None:
                return
            st = {"model": m, "tasks": 0}
            setattr(self, f"_stream_{tenant.name}", st)
        m = st["model"]
        pair = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))[st["tasks"] % 5]
        rows, labels = self.subset(random.randint(80, 150), pair)
        path = f"/v1/models/{m}/tasks/stream?name=s{st['tasks']}&batch_size=25&window=8&slide=0.25&learning_rate=0.004"
        st["tasks"] += 1
        try:
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/tasks/stream", path,
                                       ndjson_chunks(rows, labels, 10, 0.02), ctype="application/x-ndjson", timeout=60)
        except NoAnswer:
            self.unknown[m]["stream"] += 1
            raise
        if self.expect(s, (201,), "POST /v1/models/{id}/tasks/stream", b):
            with self.lock:
                self.stream_tasks[m] += 1
            self.count("stream task ok")
        elif s == 422:
            st["tasks"] = 99
        if st["tasks"] >= 3 and random.random() < 0.3:
            s, tasks, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}/tasks", f"/v1/models/{m}/tasks")
            if s == 200 and tasks.get("items"):
                self.forget(tenant, m, tasks["items"])
        self.sleep(0.2, 1.0)

    def analyst(self, tenant):
        with tenant.lock:
            trained = list(tenant.trained)
        if not trained:
            self.sleep(1, 2)
            return
        m = random.choice(trained)
        method = random.choice(["diagonal", "low_rank"])
        body = {"dataset_id": tenant.train_datasets[0], "method": method, "components": 4, "top_k": 128,
                "steps": 40, "examples": 120, "seed": random.randrange(100)}
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/models/{id}/analyses", f"/v1/models/{m}/analyses", body)
        if not self.expect(s, (202,), "POST /v1/models/{id}/analyses", b):
            self.sleep(1, 2)
            return
        aid = b["id"]
        self.record_job({"id": b["job_id"]}, "analysis", tenant, m, "analysis")
        final = self.watch(tenant, b["job_id"])
        if not final or final["state"] != "succeeded":
            return
        with tenant.lock:
            tenant.analyses.append(aid)
        for route, path in (("GET /v1/analyses/{id}", f"/v1/analyses/{aid}"),
                            ("GET /v1/analyses/{id}/components", f"/v1/analyses/{aid}/components"),
                            ("GET /v1/analyses/{id}/components/{j}", f"/v1/analyses/{aid}/components/{random.randrange(4)}")):
            s, b, _ = self.client.call(tenant.key, "GET", route, path)
            self.expect(s, (200,), route, b)
        s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/analyses/{id}/components/{j}/examples.png",
                                   f"/v1/analyses/{aid}/components/0/examples.png?count=4", raw=True)
        self.expect(s, (200,), "GET /v1/analyses/{id}/components/{j}/examples.png", b)
        pert = {"magnitude": 0.1, "random": 64, "top": 8}
        if method == "diagonal" and random.random() < 0.3:
            pert = {"target_kl": [0.01, 0.5], "random": 64, "top": 8}
        s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/analyses/{id}/components/{j}/perturb",
                                   f"/v1/analyses/{aid}/components/{random.randrange(4)}/perturb", pert, timeout=60, retry=True)
        self.expect(s, (200,), "POST /v1/analyses/{id}/components/{j}/perturb", b)
        if random.random() < 0.4:
            s, b, _ = self.client.call(tenant.key, "POST", "POST /v1/analyses/{id}/fit", f"/v1/analyses/{aid}/fit",
                                       {"dataset_id": tenant.eval_dataset, "examples": 80, "steps": 20})
            if self.expect(s, (202,), "POST /v1/analyses/{id}/fit", b):
                self.record_job(b, "analysis", tenant, m, "fit")
                with self.lock:
                    self.fit_jobs[b["id"]] = aid
                self.watch(tenant, b["id"])
        self.sleep(0.2, 1.0)

    def uploader(self, tenant):
        fmt = random.choice(["json", "csv", "ndjson", "seq", "bad"])
        rows, labels = self.subset(random.randint(50, 200) if random.random() < 0.9 else len(self.rows))
        route = f"POST /v1/datasets ({fmt})"
        if fmt == "json":
            s, b, _ = self.client.call(tenant.key, "POST", route, "/v1/datasets",
                                       {"name": "up-json", "features": rows, "labels": labels, "image_shape": [8, 8]})
        elif fmt == "csv":
            s, b, _ = self.client.call(tenant.key, "POST", route, "/v1/datasets?name=up-csv&image_shape=8,8",
                                       csv_text(rows, labels), ctype="text/csv")
        elif fmt == "ndjson":
            s, b, _ = self.client.call(tenant.key, "POST", route, "/v1/datasets?name=up-ndjson&image_shape=8,8",
                                       ndjson_chunks(rows, labels, 25), ctype="application/x-ndjson", timeout=60)
        elif fmt == "seq":
            seq = [[r[i * 8:(i + 1) * 8] for i in range(8)] for r in rows]
            s, b, _ = self.client.call(tenant.key, "POST", route, "/v1/datasets",
                                       {"name": "up-seq", "features": seq, "labels": labels})
        else:   # an invalid CSV (NaN feature): must be 422, store nothing
            bad = csv_text(rows[:5], labels[:5]) + b"3,nan" + b",0" * 63 + b"\n"
            s, b, _ = self.client.call(tenant.key, "POST", route, "/v1/datasets?name=up-bad", bad, ctype="text/csv")
            self.expect(s, (422, 400), route, b)
            return
        if not self.expect(s, (201,), route, b):
            return
        ds = b["id"]
        s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/datasets/{id}", f"/v1/datasets/{ds}")
        self.expect(s, (200,), "GET /v1/datasets/{id}", b)
        if fmt != "seq" and random.random() < 0.3 and len(tenant.train_datasets) < 6:
            with tenant.lock:
                tenant.train_datasets.append(ds)
        else:
            s, b, _ = self.client.call(tenant.key, "DELETE", "DELETE /v1/datasets/{id}", f"/v1/datasets/{ds}")
            self.expect(s, (204, 404), "DELETE /v1/datasets/{id}", b)
        # A throwaway model: create, read, delete.
        if random.random() < 0.3:
            m = self.create_model(tenant, "pfc", basis=16, iterations=5, name="tmp")
            if m:
                s, b, _ = self.client.call(tenant.key, "GET", "GET /v1/models/{id}", f"/v1/models/{m}")
                self.expect(s, (200,), "GET /v1/models/{id}", b)
                s, b, _ = self.client.call(tenant.key, "DELETE", "DELETE /v1/models/{id}", f"/v1/models/{m}")
                if self.expect(s, (204, 404), "DELETE /v1/models/{id}", b):
                    with self.lock:
                        self.deleted_models.add(m)
        self.sleep(0.3, 1.2)

    def reader(self, tenant):
        other = [t for t in self.tenants if t is not tenant]
        with tenant.lock:
            models = list(tenant.models)
            trained = list(tenant.trained)
            analyses = list(tenant.analyses)
            datasets = list(tenant.train_datasets)
        with self.lock:
            jobs = [j for j, v in self.jobs.items() if v["tenant"] == tenant.name][-50:]
        choice = random.random()
        k = tenant.key
        c = self.client
        if choice < 0.05:
            for path in ("/healthz", "/readyz"):
                s, b, _ = c.call(k, "GET", f"GET {path}", path)
                self.expect(s, (200,), f"GET {path}", b)
        elif choice < 0.08:
            s, b, _ = c.call(k, "GET", "GET /metrics", "/metrics", raw=True)
            self.expect(s, (200,), "GET /metrics", b)
        elif choice < 0.13:
            s, b, _ = c.call(k, "GET", "GET /v1/datasets", "/v1/datasets?limit=20")
            self.expect(s, (200,), "GET /v1/datasets", b)
            if datasets:
                s, b, _ = c.call(k, "GET", "GET /v1/datasets/{id}", f"/v1/datasets/{random.choice(datasets)}")
                self.expect(s, (200,), "GET /v1/datasets/{id}", b)
        elif choice < 0.18:
            s, b, _ = c.call(k, "GET", "GET /v1/models", f"/v1/models?limit=20&offset={random.randrange(3) * 20}")
            self.expect(s, (200,), "GET /v1/models", b)
        elif choice < 0.45 and trained:
            m = random.choice(trained)
            rows, _ = self.subset(random.choice([1, 5, 20, 200]))
            s, b, _ = c.call(k, "POST", "POST /v1/models/{id}/predict", f"/v1/models/{m}/predict",
                             {"inputs": rows, "top": random.choice([1, 3, 5])}, retry=True)
            self.expect(s, (200,), "POST /v1/models/{id}/predict", b)
        elif choice < 0.6 and models:
            m = random.choice(models)
            want = (200, 404) if m in self.deleted_models else (200,)
            for route, path in (("GET /v1/models/{id}", f"/v1/models/{m}"),
                                ("GET /v1/models/{id}/versions", f"/v1/models/{m}/versions")):
                s, b, _ = c.call(k, "GET", route, path)
                self.expect(s, want, route, b)
        elif choice < 0.7 and trained:
            m = random.choice(trained)
            s, b, _ = c.call(k, "GET", "GET /v1/models/{id}/components", f"/v1/models/{m}/components?block=0")
            self.expect(s, (200,), "GET /v1/models/{id}/components", b)
            s, b, _ = c.call(k, "GET", "GET /v1/models/{id}/components/{block}/{component}.png",
                             f"/v1/models/{m}/components/0/{random.randrange(16)}.png", raw=True)
            self.expect(s, (200, 422), "GET /v1/models/{id}/components/{block}/{component}.png", b)
        elif choice < 0.78 and models:
            m = random.choice(models)
            want = (200, 404) if m in self.deleted_models else (200,)
            for route, path in (("GET /v1/models/{id}/ledger", f"/v1/models/{m}/ledger?limit=20"),
                                ("GET /v1/models/{id}/tasks", f"/v1/models/{m}/tasks"),
                                ("GET /v1/models/{id}/forgets", f"/v1/models/{m}/forgets")):
                s, b, _ = c.call(k, "GET", route, path)
                self.expect(s, want, route, b)
        elif choice < 0.88 and jobs:
            s, b, _ = c.call(k, "GET", "GET /v1/jobs/{id}", f"/v1/jobs/{random.choice(jobs)}")
            self.expect(s, (200,), "GET /v1/jobs/{id}", b)
        elif choice < 0.93 and analyses:
            a = random.choice(analyses)
            s, b, _ = c.call(k, "GET", "GET /v1/analyses/{id}", f"/v1/analyses/{a}")
            self.expect(s, (200,), "GET /v1/analyses/{id}", b)
            s, b, _ = c.call(k, "GET", "GET /v1/models/{id}/analyses", f"/v1/models/{b['model_id']}/analyses"
                             if s == 200 else f"/v1/models/{random.choice(trained)}/analyses")
            self.expect(s, (200,), "GET /v1/models/{id}/analyses", b)
        elif other:
            # Cross-tenant probe: another tenant's model or job must answer 404.
            o = random.choice(other)
            with o.lock:
                theirs = list(o.models)
            if theirs:
                m = random.choice(theirs)
                s, b, _ = c.call(k, "GET", "GET /v1/models/{id} (other tenant)", f"/v1/models/{m}")
                self.stats.cross_tenant["404" if s == 404 else f"LEAK {s}" if s < 300 else str(s)] += 1
                self.expect(s, (404,), "GET /v1/models/{id} (other tenant)", b)
        self.sleep(0.02, 0.08)


# --------------------------------------------------------------------------------------------
# Faults and monitoring

class Faults:
    def __init__(self, args, replicas, db, load, t_start, duration):
        self.args, self.replicas, self.db, self.load = args, replicas, db, load
        self.t_start, self.duration = t_start, duration
        self.events = []             # (t, text)
        self.kills = []              # {"replica", "t", "ready", "jobs": [ids running there]}
        self.pg = None               # {"t", "done", "ready", "rc"}
        self.crashes = []
        self.stop = threading.Event()

    def log(self, text):
        t = now() - self.t_start
        self.events.append((t, text))
        print(f"[soak {t:7.1f}s] {text}", flush=True)

    def schedule(self):
        every = self.args.kill_every if self.args.kill_every is not None else (240 if self.duration >= 720 else self.duration / 3)
        plan, t, i = [], every, 0
        while every > 0 and t < self.duration - min(60, every / 2):
            plan.append((t, "kill", self.replicas[i % 2]))
            t += every
            i += 1
        if not self.args.no_pg_restart:
            pg_t = self.duration / 2
            kill_times = [p[0] for p in plan]
            # Half-way between two kills if a kill falls near the middle.
            if every > 0 and any(abs(pg_t - k) < every / 4 for k in kill_times):
                pg_t += every / 2
            plan.append((pg_t, "pg", None))
        return sorted(plan, key=lambda p: p[0])

    def run(self):
        for t, what, rep in self.schedule():
            while now() - self.t_start < t:
                if self.stop.wait(0.2):
                    return
            try:
                if what == "kill":
                    self.kill(rep)
                else:
                    self.restart_pg()
            except Exception as e:
                self.log(f"fault {what} failed: {e!r}")

    def running_jobs(self, rep):
        try:
            return [r[0] for r in self.db.rows(
                f"SELECT id FROM jobs WHERE state = 'running' AND lease_owner LIKE '{rep.name}-%'", timeout=10)]
        except Exception as e:
            return [f"(query failed: {e})"]

    def kill(self, rep):
        # Prefer to kill while the replica holds a job lease (the reclaim path), waiting up to 30 s for one.
        deadline = now() + 30
        jobs = self.running_jobs(rep)
        while not [j for j in jobs if not j.startswith("(")] and now() < deadline:
            time.sleep(0.25)
            jobs = self.running_jobs(rep)
        t = rep.kill9()
        self.log(f"kill -9 {rep.name} (pid {rep.segments[-1]['pid']}), running jobs there: {len(jobs)}")
        entry = {"replica": rep.name, "t": t - self.t_start, "ready": None, "jobs": jobs}
        self.kills.append(entry)
        time.sleep(self.args.restart_delay)
        rep.start("restart after kill -9")
        ready = now()
        rep.windows.append((t, ready))
        entry["ready"] = ready - self.t_start
        self.log(f"{rep.name} restarted, healthy after {ready - t:.1f} s (pid {rep.proc.pid})")

    def restart_pg(self):
        cmd = os.environ.get("PFC_TEST_PG_RESTART")
        if not cmd:
            self.log("no PFC_TEST_PG_RESTART: skipping the PostgreSQL restart")
            return
        t = now()
        self.log("PostgreSQL restart begins")
        rc = subprocess.run([cmd], capture_output=True, text=True, timeout=180).returncode
        done = now()
        # Both replicas ready again (readyz 200)?
        ready = None
        deadline = now() + 120
        while now() < deadline and ready is None:
            ok = 0
            for rep in self.replicas:
                try:
                    c = http.client.HTTPConnection(HOST, rep.port, timeout=3)
                    c.request("GET", "/readyz")
                    r = c.getresponse()
                    r.read()
                    c.close()
                    ok += r.status == 200
                except OSError:
                    pass
            if ok == len(self.replicas):
                ready = now()
            else:
                time.sleep(0.25)
        self.pg = {"t": t - self.t_start, "done": done - self.t_start, "rc": rc,
                   "ready": None if ready is None else ready - self.t_start}
        self.log(f"PostgreSQL restart done (rc {rc}) in {done - t:.1f} s; both replicas ready "
                 f"{'after %.1f s' % (ready - t) if ready else 'NOT within 120 s'}")


class Monitor:
    """Samples VmRSS every 10 s and notices a replica that died without being killed."""
    def __init__(self, replicas, faults, load, stats, t_start):
        self.replicas, self.faults, self.load, self.stats, self.t_start = replicas, faults, load, stats, t_start
        self.stop = threading.Event()

    def run(self):
        last_sample = 0.0
        while not self.stop.is_set():
            t = now()
            for rep in self.replicas:
                with rep.lock:
                    if rep.state == "up" and rep.proc.poll() is not None:
                        self.crash(rep)
                        continue
                    if t - last_sample >= 10 and rep.state == "up":
                        kb = rep.rss_kb()
                        if kb is not None:
                            rep.segments[-1]["samples"].append((t - self.t_start, kb))
            if t - last_sample >= 10:
                last_sample = t
            self.stop.wait(0.5)

    def crash(self, rep):
        rc = rep.proc.returncode
        t = now()
        with rep.inflight_lock:
            inflight = sorted(rep.inflight.values())
        seg = rep.segments[-1]
        seg["t1"], seg["end"] = t, f"CRASH (exit {rc})"
        entry = {"replica": rep.name, "t": t - self.t_start, "rc": rc, "inflight": inflight[:40],
                 "log": rep.crash_excerpt()}
        self.faults.crashes.append(entry)
        rep.state = "crashed"
        self.faults.log(f"CRASH: {rep.name} exited with {rc} without being killed; {len(inflight)} requests in flight")
        # Keep the soak going: restart it (in the background, so the sampling goes on).
        def restart():
            try:
                rep.start("restart after CRASH")
                rep.windows.append((t, now()))
                self.faults.log(f"{rep.name} restarted after the crash")
            except Exception as e:
                self.faults.log(f"{rep.name} could not be restarted after the crash: {e}")
        threading.Thread(target=restart, daemon=True).start()


# --------------------------------------------------------------------------------------------
# Verification

def verify_model_file(blob):
    """Checks magic, format version, the parameter table and the trailing CRC-32. Returns None or a reason."""
    if len(blob) < 20 or blob[:8] != b"PFCMODEL":
        return "bad magic or too short"
    body, crc = blob[:-4], struct.unpack("<I", blob[-4:])[0]
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        return "CRC-32 mismatch"
    off = 8
    (version,) = struct.unpack_from("<I", blob, off); off += 4
    if version != 1:
        return f"format version {version}"
    (jl,) = struct.unpack_from("<I", blob, off); off += 4
    try:
        json.loads(blob[off:off + jl])
    except ValueError:
        return "architecture JSON does not parse"
    off += jl
    (count,) = struct.unpack_from("<I", blob, off); off += 4
    for _ in range(count):
        (nl,) = struct.unpack_from("<H", blob, off); off += 2 + nl
        rows, cols = struct.unpack_from("<II", blob, off); off += 9
        off += rows * cols * 4
        if off > len(body):
            return "parameter table runs past the end"
    if off != len(body):
        return f"{len(body) - off} unexplained bytes before the CRC"
    return None


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def in_windows(t, windows, before=1.0, after=3.0):
    return any(a - before <= t <= b + after for a, b in windows)


class Verifier:
    def __init__(self, args, db, client, load, tenants, replicas):
        self.args, self.db, self.client, self.load, self.tenants, self.replicas = args, db, client, load, tenants, replicas
        self.findings = []

    def wait_terminal(self, grace):
        t0 = now()
        pending = None
        while now() - t0 < grace:
            try:
                pending = self.db.rows("SELECT id, state, kind FROM jobs WHERE state NOT IN ('succeeded','failed','cancelled')")
            except Exception as e:
                print(f"[soak] waiting for jobs: {e}", flush=True)
                time.sleep(2)
                continue
            if not pending:
                return now() - t0, []
            time.sleep(2)
        return now() - t0, pending or []

    def jobs(self):
        out = {}
        for r in self.db.rows("SELECT id, kind, state, COALESCE(model_id,''), attempts, COALESCE(error,''), "
                              "COALESCE(result,''), tenant_id, cancel_requested FROM jobs"):
            out[r[0]] = {"kind": r[1], "state": r[2], "model": r[3], "attempts": int(r[4]), "error": r[5],
                         "result": json.loads(r[6]) if r[6] else None, "tenant": r[7], "cancel_requested": r[8] == "t"}
        return out


# --------------------------------------------------------------------------------------------
# The run

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the pfc-server binary (release build)")
    ap.add_argument("--minutes", type=float, default=20.0, help="load duration (default 20)")
    ap.add_argument("--kill-every", type=float, default=None,
                    help="seconds between kill -9s (default 240, or a third of the run when shorter than 12 min)")
    ap.add_argument("--restart-delay", type=float, default=3.0, help="seconds a killed replica stays down")
    ap.add_argument("--lease-seconds", type=int, default=10)
    ap.add_argument("--server-threads", type=int, default=1, help="--threads of each replica (compute threads)")
    ap.add_argument("--grace", type=float, default=300.0, help="seconds to wait for every job to end after the load")
    ap.add_argument("--no-pg-restart", action="store_true")
    ap.add_argument("--digits", default=None, help="CSV fixture (label first); default Tests/PFCTests/Fixtures/digits_train.csv")
    ap.add_argument("--out", default=None, help="the report file (default Benchmarks/soak/results-<date>.md)")
    ap.add_argument("--workdir", default=None, help="where replica logs go (default a new /tmp/pfc-soak-* dir, kept)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE",
                    help="an environment variable for replica-a only (e.g. MALLOC_ARENA_MAX=2); repeatable")
    ap.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE", help="the same for replica-b")
    args = ap.parse_args()

    random.seed(args.seed)
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    url = os.environ.get("PFC_TEST_DATABASE_URL")
    if not url:
        sys.exit("PFC_TEST_DATABASE_URL is not set: run through Benchmarks/soak/run.sh (scripts/with-postgres.sh)")
    binary = os.path.abspath(args.bin)
    workdir = args.workdir or tempfile.mkdtemp(prefix="pfc-soak-")
    os.makedirs(workdir, exist_ok=True)
    out = args.out or os.path.join(here, f"results-{time.strftime('%Y-%m-%d', time.gmtime())}.md")
    digits = load_digits(args.digits or os.path.join(repo, "Tests/PFCTests/Fixtures/digits_train.csv"))
    duration = args.minutes * 60.0
    db = DB(url)
    started_utc = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"[soak] workdir {workdir}; binary {binary}; {args.minutes} min", flush=True)

    # Tenants: two keys from the CLI (before any server, so no default tenant is made).
    tenants = []
    for name in ("soak-a", "soak-b"):
        key = subprocess.run([binary, "keys", "create", "--tenant", name, "--database-url", url],
                             check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        tid = db.rows(f"SELECT id FROM tenants WHERE name = '{name}'")[0][0]
        tenants.append(Tenant(name, key, tid))

    extra = []
    envs = {"replica-a": dict(kv.split("=", 1) for kv in args.env_a),
            "replica-b": dict(kv.split("=", 1) for kv in args.env_b)}
    replicas = [Replica(n, binary, url, args.lease_seconds, args.server_threads, workdir, extra, envs[n])
                for n in ("replica-a", "replica-b")]

    def cleanup():
        # Never leave a replica behind, whatever happened (they are our own children).
        for rep in replicas:
            if rep.proc is not None and rep.proc.poll() is None:
                rep.proc.kill()
                rep.proc.wait()
    import atexit
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for rep in replicas:
        rep.start("initial")
    git_rev = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%h %s", "--", "Sources", "Package.swift", "migrations"],
                             capture_output=True, text=True).stdout.strip()

    stats = Stats()
    client = Client(replicas, stats)
    load = Load(args, client, stats, tenants, digits)
    for t in tenants:
        load.setup(t)

    t_start = now()
    args.loadavg = [os.getloadavg()[0], 0.0]
    faults = Faults(args, replicas, db, load, t_start, duration)
    monitor = Monitor(replicas, faults, load, stats, t_start)
    threads = [threading.Thread(target=monitor.run, daemon=True, name="monitor"),
               threading.Thread(target=faults.run, daemon=True, name="faults")]
    roles = [("trainer", load.trainer, tenants[0]), ("trainer", load.trainer, tenants[1]),
             ("continual", load.continual, tenants[0]), ("continual", load.continual, tenants[1]),
             ("streamer", load.streamer, tenants[0]), ("streamer", load.streamer, tenants[1]),
             ("analyst", load.analyst, tenants[0]), ("analyst", load.analyst, tenants[1]),
             ("uploader", load.uploader, tenants[0]), ("uploader", load.uploader, tenants[1]),
             ("reader", load.reader, tenants[0]), ("reader", load.reader, tenants[1]),
             ("reader", load.reader, tenants[0])]
    for name, fn, tenant in roles:
        threads.append(threading.Thread(target=load.run_thread, args=(f"{name}/{tenant.name}", fn, tenant),
                                        daemon=True, name=f"{name}-{tenant.name}"))
    faults.log(f"load starts: {len(roles)} client threads, 2 tenants, {args.minutes} min")
    for th in threads:
        th.start()
    next_print = 60
    while now() - t_start < duration:
        time.sleep(1)
        if now() - t_start >= next_print:
            next_print += 60
            with stats.lock:
                n = len(stats.records)
            rss = ", ".join(f"{r.name} {r.rss_kb() or 0:,} kB" for r in replicas)
            faults.log(f"{n} requests so far; jobs submitted {sum(v for k, v in load.ops.items() if k.endswith('submitted'))}; "
                       f"RSS {rss}; loadavg {os.getloadavg()[0]:.1f}")
    t_load_end = now()
    args.loadavg[1] = os.getloadavg()[0]
    faults.log("load stops; waiting for the client threads")
    load.stop.set()
    faults.stop.set()
    for th in threads[2:]:
        th.join(timeout=120)
    stuck_threads = [th.name for th in threads[2:] if th.is_alive()]
    threads[1].join(timeout=300)      # a kill/restart in progress finishes
    # Both replicas up for the grace period.
    for rep in replicas:
        for _ in range(600):
            with rep.lock:
                st = rep.state
            if st == "up":
                break
            time.sleep(0.2)

    verifier = Verifier(args, db, client, load, tenants, replicas)
    faults.log("waiting for every job to reach a terminal state")
    waited, pending = verifier.wait_terminal(args.grace)
    faults.log(f"jobs: {'all terminal' if not pending else f'{len(pending)} NOT terminal'} after {waited:.0f} s")
    monitor.stop.set()
    threads[0].join(timeout=5)

    try:
        report = build_report(args, db, client, load, tenants, replicas, faults, stats, verifier, t_start, t_load_end,
                              duration, pending, waited, stuck_threads, started_utc, git_rev, workdir)
    except Exception as e:
        tb = "".join(traceback.format_exception(e))
        report = {"text": f"# Soak run {started_utc}\n\nThe report could not be built:\n\n```\n{tb}\n```\n\n"
                          "## Faults\n\n" + "\n".join(f"- {t:7.1f} s  {x}" for t, x in faults.events) +
                          "\n\n## Shutdown\n\n@@SHUTDOWN@@\n",
                  "fail": True, "fail_reasons": ["the report could not be built"], "findings": []}
    # Shut down (SIGTERM), and see that both exit cleanly within the shutdown deadline.
    lines_shutdown = []
    for rep in replicas:
        rc, secs = rep.stop(timeout=30)
        ok = rc == 0
        lines_shutdown.append(f"- {rep.name}: SIGTERM → exit {rc} in {secs:.1f} s{'' if ok else '  **(not a clean exit)**'}")
        if not ok:
            report["findings"].append(f"{rep.name} did not exit cleanly on SIGTERM (exit {rc} after {secs:.1f} s)")
    text = report["text"].replace("@@SHUTDOWN@@", "\n".join(lines_shutdown))
    verdict_fail = report["fail"]
    text += "\n## Verdict\n\n" + ("**FAIL**: " + "; ".join(report["fail_reasons"]) if verdict_fail else "**PASS**") + "\n"
    if report["findings"]:
        text += "\nOther findings (do not fail the run by themselves):\n\n" + "\n".join(f"- {f}" for f in report["findings"]) + "\n"
    print(text, flush=True)
    with open(out, "w") as f:
        f.write(text)
    print(f"[soak] report written to {out}; replica logs in {workdir}", flush=True)
    sys.exit(1 if verdict_fail else 0)


def build_report(args, db, client, load, tenants, replicas, faults, stats, verifier, t_start, t_load_end, duration,
                 pending, waited, stuck_threads, started_utc, git_rev, workdir):
    L = []
    fail_reasons, findings = [], []
    W = L.append
    W(f"# Soak run {started_utc}\n")
    W(f"- server: last commit touching Sources/, Package.swift or migrations/ in this checkout: `{git_rev}`; "
      f"release build `{args.bin}`")
    for rep in replicas:
        if rep.extra_env:
            W(f"- {rep.name} environment: " + ", ".join(f"`{k}={v}`" for k, v in rep.extra_env.items()))
    W(f"- two replicas (`--lease-seconds {args.lease_seconds} --threads {args.server_threads}`, default handler threads) "
      f"on one PostgreSQL (scripts/with-postgres.sh), 2 tenants, 13 closed-loop client threads, "
      f"{args.minutes:g} min of load (seed {args.seed})")
    W(f"- logs: `{workdir}`")
    W(f"- machine: {os.cpu_count()} cores, load average at the start {args.loadavg[0]:.1f}, at the end of the load "
      f"{args.loadavg[1]:.1f} (other sessions share the machine)\n")

    # ---------------- faults
    W("## Faults\n")
    for t, text in faults.events:
        W(f"- {t:7.1f} s  {text}")
    W("")
    for k in faults.kills:
        W(f"- kill of {k['replica']} at {k['t']:.0f} s: jobs it was running: {', '.join(k['jobs']) or 'none'}")
    if faults.pg is None and not args.no_pg_restart:
        findings.append("the PostgreSQL restart did not happen")
    elif faults.pg and faults.pg["ready"] is None:
        fail_reasons.append("replicas not ready within 120 s after the PostgreSQL restart")
    W("")

    # ---------------- requests
    kill_windows = collections.defaultdict(list)
    for rep in replicas:
        kill_windows[rep.name] = list(rep.windows)
    pg_window = []
    if faults.pg:
        pg_window = [(t_start + faults.pg["t"], t_start + (faults.pg["ready"] or faults.pg["done"]))]
    by_route = collections.defaultdict(lambda: {"status": collections.Counter(), "lat": []})
    total = collections.Counter()
    conn = collections.Counter()
    unexpected_5xx = []
    for t, route, status, secs, rep in stats.records:
        r = by_route[route]
        r["status"][status] += 1
        total[status] += 1
        if isinstance(status, int):
            r["lat"].append(secs)
        else:
            if in_windows(t, kill_windows[rep], before=secs + 1, after=3):
                conn[f"{status} during kill/restart of {rep}"] += 1
            elif in_windows(t, pg_window, before=secs + 1, after=5):
                conn[f"{status} during PostgreSQL restart"] += 1
            else:
                conn[f"{status} outside any fault window"] += 1
    for e in stats.server_errors:
        t_abs = e[1]
        where = ("kill" if in_windows(t_abs, kill_windows[e[2]], before=65, after=3) else
                 "pg" if in_windows(t_abs, pg_window, before=65, after=5) else "none")
        if where == "none" or e[6] == 500:
            unexpected_5xx.append(e)
    W("## Requests\n")
    W(f"{sum(total.values())} requests in {(t_load_end - t_start):.0f} s of load "
      f"({sum(total.values()) / max(1, t_load_end - t_start):.1f}/s, plus the set-up and end checks).\n")
    W("By status: " + ", ".join(f"{k}: {v}" for k, v in sorted(total.items(), key=lambda kv: str(kv[0]))) + "\n")
    W("Connection errors (no HTTP answer) by cause: " + (", ".join(f"{k}: {v}" for k, v in sorted(conn.items())) or "none"))
    W(" (conn_refused: nothing was sent, the client tried the other replica; conn_error/timeout: sent, then the "
      "connection died or 30–60 s passed; a GET is retried on the other replica, a POST counts as an unknown outcome)\n")
    outside = [c for c in stats.conn_samples
               if not in_windows(c[1], kill_windows[c[2]], before=c[6] + 1, after=3)
               and not in_windows(c[1], pg_window, before=c[6] + 1, after=5)]
    if outside:
        W("Connection errors outside the fault windows (first 20):\n")
        for c in outside[:20]:
            W(f"- {c[0]} {c[2]} `{c[3]} {c[4]}` after {c[6]:.2f} s: {c[7]} `{c[5]}`")
        W("")
    if any("outside any fault window" in k for k in conn):
        findings.append("connection errors outside any fault window: " +
                        ", ".join(f"{k}: {v}" for k, v in conn.items() if "outside" in k))
    W("| route | requests | by status | p50 ms | p99 ms | max ms |")
    W("|---|---:|---|---:|---:|---:|")
    for route in sorted(by_route):
        r = by_route[route]
        n = sum(r["status"].values())
        st = ", ".join(f"{k}: {v}" for k, v in sorted(r["status"].items(), key=lambda kv: str(kv[0])))
        lat = r["lat"]
        W(f"| `{route}` | {n} | {st} | {percentile(lat, 50) * 1000:.1f} | {percentile(lat, 99) * 1000:.1f} | "
          f"{(max(lat) if lat else float('nan')) * 1000:.1f} |")
    W("\n(latency: from connect to the whole answer read; the event-stream route: to the response head.)\n")
    if stats.unknown_outcome:
        W("POSTs sent without an answer (outcome unknown, not retried): " +
          ", ".join(f"`{k}` {v}" for k, v in sorted(stats.unknown_outcome.items())) + "\n")
    W("SSE: " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.sse.items())) + "\n")
    W("Cross-tenant probes: " + (", ".join(f"{k}: {v}" for k, v in stats.cross_tenant.items()) or "none") + "\n")
    if any(k.startswith("LEAK") for k in stats.cross_tenant):
        fail_reasons.append("a cross-tenant probe did not answer 404")
    if stats.samples:
        W("Answers the load did not expect, other than 503 (503s are counted against the fault windows below; "
          "route → status (unexpected × of all answers with that status): up to 4 distinct messages):\n")
        for (route, status), msgs in sorted(stats.samples.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            if status == 503:
                continue
            W(f"- `{route}` → {status} ({stats.unexpected[(route, status)]}× of {by_route[route]['status'][status]}): "
              + " | ".join(f"`{m}`" for m in msgs if m))
        W("")
    if unexpected_5xx:
        W(f"5xx answers that are not a 503 inside a fault window ({len(unexpected_5xx)}; first 15):\n")
        for e in unexpected_5xx[:15]:
            W(f"- {e[0]} {e[2]} `{e[3]} {e[4]}` (X-Request-Id {e[8]}) → {e[6]} `{e[7][:300]}`; body `{str(e[5])[:160]}`")
        W("")
        findings.append(f"{len(unexpected_5xx)} 5xx answers outside the fault windows or 500s")
    fivexx_in_faults = len(stats.server_errors) - len(unexpected_5xx)
    W(f"503s inside a fault window (kill or PostgreSQL restart, up to 65 s before its end): {fivexx_in_faults}\n")
    if stats.client_exceptions:
        W("Load-script exceptions (answers it could not use): " +
          ", ".join(f"{k}: {v}" for k, v in stats.client_exceptions.items()))
        for k, tb in list(stats.client_exception_samples.items())[:5]:
            W(f"\n```\n{k}\n{tb}\n```")
        W("")
    if stuck_threads:
        findings.append(f"client threads still busy 120 s after the load stopped: {stuck_threads}")

    # ---------------- jobs
    W("## Jobs\n")
    jobs = verifier.jobs()
    submitted = load.jobs
    by_op = collections.Counter()
    for jid, info in submitted.items():
        j = jobs.get(jid)
        by_op[(info["op"], j["state"] if j else "MISSING")] += 1
    states = collections.Counter(j["state"] for j in jobs.values())
    W(f"Jobs in the database: {len(jobs)} ({', '.join(f'{k} {v}' for k, v in sorted(states.items()))}); "
      f"jobs the load got a 202 for: {len(submitted)}.\n")
    W("| job | submitted (202) | succeeded | failed | cancelled | not terminal | missing from the DB |")
    W("|---|---:|---:|---:|---:|---:|---:|")
    for op in ("train", "train (2 at once)", "task", "analysis", "fit"):
        n = sum(v for (o, s), v in by_op.items() if o == op)
        W(f"| {op} | {n} | {by_op[(op, 'succeeded')]} | {by_op[(op, 'failed')]} | {by_op[(op, 'cancelled')]} | "
          f"{by_op[(op, 'queued')] + by_op[(op, 'running')]} | {by_op[(op, 'MISSING')]} |")
    W("")
    errors = collections.Counter()
    for j in jobs.values():
        if j["state"] == "failed":
            norm = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", j["error"])
            norm = re.sub(r"\b\d+\b", "<n>", norm).replace("\n", " ")
            errors[(j["kind"], norm[:300])] += 1
    if errors:
        W("Failed jobs, by error:\n")
        for (kind, e), n in errors.most_common():
            W(f"- {n} × {kind}: `{e}`")
        W("")
    timing = collections.defaultdict(lambda: ([], []))
    for r in db.rows("SELECT kind, EXTRACT(EPOCH FROM started_at - created_at), EXTRACT(EPOCH FROM finished_at - started_at) "
                     "FROM jobs WHERE state = 'succeeded' AND started_at IS NOT NULL"):
        timing[r[0]][0].append(float(r[1]))
        timing[r[0]][1].append(float(r[2]))
    W("Succeeded jobs, queue wait (created → started) and run time (started → finished, including reclaimed attempts), seconds:\n")
    W("| kind | jobs | wait p50 | wait p99 | run p50 | run p99 | run max |")
    W("|---|---:|---:|---:|---:|---:|---:|")
    for kind, (wait, run) in sorted(timing.items()):
        W(f"| {kind} | {len(run)} | {percentile(wait, 50):.2f} | {percentile(wait, 99):.2f} | {percentile(run, 50):.2f} | "
          f"{percentile(run, 99):.2f} | {max(run):.2f} |")
    W("")
    # `attempts` counts runs (a claimed job has 1); a job reclaimed after its lease expired has 2 or more.
    retried = [(jid, j) for jid, j in jobs.items() if j["attempts"] > 1]
    W(f"Jobs that ran more than once (reclaimed after a lease expired: attempts > 1): {len(retried)} "
      "(" +
      ", ".join(f"{s} {n}" for s, n in collections.Counter(j["state"] for _, j in retried).items()) + ")\n")
    killed_jobs = [jid for k in faults.kills for jid in k["jobs"] if not jid.startswith("(")]
    if killed_jobs:
        W("Jobs running on a replica when it was killed, and how they ended: " + ", ".join(
            f"{jid[:8]}… {jobs[jid]['state']} (attempts {jobs[jid]['attempts']})" if jid in jobs else f"{jid} MISSING"
            for jid in killed_jobs) + "\n")
    lost = [p for p in pending] + [[jid, "missing from the database", info["op"]]
                                   for jid, info in submitted.items() if jid not in jobs]
    W(f"**Lost: {len(lost)}** (jobs not terminal {waited:.0f} s after the load stopped with both replicas up, "
      f"or a 202 whose job row is missing)" + ("" if not lost else ": " + ", ".join(f"{p[0]} ({p[1]})" for p in lost[:20])) + "\n")
    if lost:
        fail_reasons.append(f"{len(lost)} lost jobs")
    # Client view agrees with the database?
    disagree = [jid for jid, info in submitted.items() if info["final"] and jid in jobs
                and info["final"]["state"] != jobs[jid]["state"]]
    if disagree:
        findings.append(f"{len(disagree)} jobs whose terminal state seen by the client differs from the database: {disagree[:5]}")

    # ---------------- run twice / consistency
    W("## Run twice (duplicated effects) and consistency\n")
    W("A job may run more than once after a kill (attempts > 1); what must never happen is its *effect* twice. "
      "Checked per model, from the database and the API:\n")
    W("1. versions with reason `train` = succeeded `train` jobs on the model (exactly), and every succeeded train job's "
      "`result.model_version` is a distinct `train` version;")
    W("2. versions with reason `task` = succeeded `task` jobs + streamed tasks answered 201, plus at most the streamed "
      "tasks that got no answer (unknown outcome); same for the succeeded task jobs' `result.model_version`;")
    W("3. versions with reason `forget` = forget audit rows of the model, and = forget answers with `version_created` "
      "(+ at most the forgets without an answer);")
    W("4. no two batch-ledger rows with the same (model, version, task, epoch, batch index), and no ledger row of a "
      "version that does not exist (a half-written attempt);")
    W("5. `GET /v1/models/{id}/tasks`: task numbers unique and as many tasks as `task` versions;")
    W("6. every succeeded analysis job's analysis is `ready` with exactly its `components` rows; every failed or cancelled "
      "one is not `ready`; every fit job appears in its analysis's `fits` once if it succeeded and never otherwise;")
    W("7. version numbers of a model are 0…n without gaps, and the API lists the same versions as the database.\n")
    versions = collections.defaultdict(dict)
    for r in db.rows("SELECT model_id, version, reason, COALESCE(parent_version, -1) FROM model_versions"):
        versions[r[0]][int(r[1])] = r[2]
    audits = collections.Counter(r[0] for r in db.rows("SELECT model_id FROM forget_audits"))
    model_tenant = {r[0]: r[1] for r in db.rows("SELECT id, tenant_id FROM models")}
    twice, incons = [], []
    jobs_by_model = collections.defaultdict(list)
    for jid, j in jobs.items():
        if j["model"]:
            jobs_by_model[j["model"]].append((jid, j))
    for m, vs in versions.items():
        reasons = collections.Counter(vs.values())
        mj = jobs_by_model.get(m, [])
        ok_train = [(jid, j) for jid, j in mj if j["kind"] == "train" and j["state"] == "succeeded"]
        ok_task = [(jid, j) for jid, j in mj if j["kind"] == "task" and j["state"] == "succeeded"]
        if reasons["train"] != len(ok_train):
            (twice if reasons["train"] > len(ok_train) else incons).append(
                f"model {m}: {reasons['train']} train versions but {len(ok_train)} succeeded train jobs")
        for kind, ok in (("train", ok_train), ("task", ok_task)):
            seen = collections.Counter()
            for jid, j in ok:
                v = (j["result"] or {}).get("model_version")
                seen[v] += 1
                if v not in vs or vs[v] != kind:
                    incons.append(f"{kind} job {jid}: result.model_version {v} is not a {kind} version of {m}")
            for v, n in seen.items():
                if n > 1:
                    twice.append(f"model {m}: {n} {kind} jobs claim version {v}")
        streamed = load.stream_tasks.get(m, 0)
        unknown_stream = load.unknown.get(m, {}).get("stream", 0)
        lo, hi = len(ok_task) + streamed, len(ok_task) + streamed + unknown_stream
        if not lo <= reasons["task"] <= hi:
            (twice if reasons["task"] > hi else incons).append(
                f"model {m}: {reasons['task']} task versions, expected {lo}…{hi} ({len(ok_task)} task jobs, "
                f"{streamed} streamed, {unknown_stream} streamed without an answer)")
        f_lo = load.forgets.get(m, 0)
        f_hi = f_lo + load.unknown.get(m, {}).get("forget", 0)
        if reasons["forget"] != audits.get(m, 0):
            incons.append(f"model {m}: {reasons['forget']} forget versions but {audits.get(m, 0)} forget audits")
        if not f_lo <= reasons["forget"] <= f_hi:
            (twice if reasons["forget"] > f_hi else incons).append(
                f"model {m}: {reasons['forget']} forget versions, expected {f_lo}…{f_hi}")
        if sorted(vs) != list(range(len(vs))):
            incons.append(f"model {m}: version numbers {sorted(vs)} have gaps")
    # Jobs that succeeded on a model that is gone are fine only if the model was deleted by the load.
    for m, mj in jobs_by_model.items():
        if m not in versions and m not in load.deleted_models and any(j["state"] == "succeeded" for _, j in mj):
            incons.append(f"model {m}: succeeded jobs but no versions and not deleted by the load")
    dup_ledger = db.rows("SELECT model_id, version, task, epoch, batch_index, count(*) FROM batch_ledger "
                         "GROUP BY 1,2,3,4,5 HAVING count(*) > 1 LIMIT 20")
    for r in dup_ledger:
        twice.append(f"ledger rows duplicated: model {r[0]} version {r[1]} task {r[2]} epoch {r[3]} batch {r[4]} × {r[5]}")
    orphan_ledger = db.rows("SELECT l.model_id, l.version, count(*) FROM batch_ledger l LEFT JOIN model_versions v "
                            "ON v.model_id = l.model_id AND v.version = l.version WHERE v.model_id IS NULL GROUP BY 1,2 LIMIT 20")
    for r in orphan_ledger:
        incons.append(f"ledger rows of a missing version: model {r[0]} version {r[1]} × {r[2]}")
    ledger_rows = db.rows("SELECT count(*) FROM batch_ledger")[0][0]
    for r in db.rows("SELECT c.model_id, c.version, count(*) FROM components c LEFT JOIN model_versions v "
                     "ON v.model_id = c.model_id AND v.version = c.version WHERE v.model_id IS NULL GROUP BY 1,2 LIMIT 20"):
        incons.append(f"component rows of a missing version: model {r[0]} version {r[1]} × {r[2]}")
    for r in db.rows("SELECT a.id, a.state, count(*) FROM analysis_components c JOIN analyses a ON a.id = c.analysis_id "
                     "WHERE a.state <> 'ready' GROUP BY 1,2 LIMIT 20"):
        incons.append(f"analysis {r[0]} is {r[1]} but has {r[2]} component rows (half-written)")
    bad_uploads = int(db.rows("SELECT count(*) FROM datasets WHERE name = 'up-bad'")[0][0])
    if bad_uploads:
        incons.append(f"{bad_uploads} invalid CSV uploads (answered 4xx or not at all) were stored")
    # Analyses and fits.
    analyses = {r[0]: {"state": r[1], "job": r[2], "components": int(r[3])} for r in db.rows(
        "SELECT a.id, a.state, COALESCE(a.job_id,''), (SELECT count(*) FROM analysis_components c WHERE c.analysis_id = a.id) "
        "FROM analyses a")}
    for aid, a in analyses.items():
        j = jobs.get(a["job"])
        if j is None:
            incons.append(f"analysis {aid}: its job {a['job']} is missing")
            continue
        if (j["state"] == "succeeded") != (a["state"] == "ready"):
            incons.append(f"analysis {aid}: state {a['state']} but its job {j['state']}")
        if a["state"] == "ready" and a["components"] != 4:
            incons.append(f"analysis {aid}: {a['components']} component rows, asked for 4")
    fit_checks = 0
    key_of = {t.id: t.key for t in tenants}
    fits_by_analysis = collections.defaultdict(list)
    for jid, aid in load.fit_jobs.items():
        fits_by_analysis[aid].append(jid)
    for aid, fjobs in fits_by_analysis.items():
        tenant_key = next((t.key for t in tenants if aid in t.analyses), None)
        if tenant_key is None:
            continue
        try:
            s, b, _ = client.call(tenant_key, "GET", "GET /v1/analyses/{id}", f"/v1/analyses/{aid}")
        except NoAnswer:
            continue
        if s != 200:
            incons.append(f"analysis {aid}: GET answered {s}")
            continue
        listed = collections.Counter(f["job_id"] for f in b.get("fits", []))
        for jid in fjobs:
            fit_checks += 1
            j = jobs.get(jid)
            want = 1 if j and j["state"] == "succeeded" else 0
            if listed[jid] > want:
                twice.append(f"fit job {jid} appears {listed[jid]} times in analysis {aid}'s fits")
            elif listed[jid] < want:
                incons.append(f"fit job {jid} succeeded but is not in analysis {aid}'s fits")
    # API views of every model: versions and tasks.
    api_checked = 0
    for m, vs in versions.items():
        key = key_of.get(model_tenant.get(m))
        if key is None:
            continue
        try:
            s, b, _ = client.call(key, "GET", "GET /v1/models/{id}/versions", f"/v1/models/{m}/versions?limit=1000")
            s2, tk, _ = client.call(key, "GET", "GET /v1/models/{id}/tasks", f"/v1/models/{m}/tasks?limit=1000")
        except NoAnswer as e:
            incons.append(f"model {m}: no answer at the final check ({e})")
            continue
        api_checked += 1
        if s != 200 or sorted(v["version"] for v in b["items"]) != sorted(vs):
            incons.append(f"model {m}: the API lists versions {s} {[v['version'] for v in b.get('items', [])] if s == 200 else b} "
                          f"but the database has {sorted(vs)}")
        if s2 == 200:
            nums = [t["task"] for t in tk["items"]]
            if len(nums) != len(set(nums)):
                twice.append(f"model {m}: task numbers repeat: {nums}")
            n_task_versions = sum(1 for r in vs.values() if r == "task")
            if len(nums) != n_task_versions:
                incons.append(f"model {m}: {len(nums)} tasks listed, {n_task_versions} task versions")
    W(f"Checked {len(versions)} models ({sum(len(v) for v in versions.values())} versions: " +
      ", ".join(f"{k} {v}" for k, v in sorted(collections.Counter(r for vs in versions.values() for r in vs.values()).items()))
      + f"), {ledger_rows} ledger rows, {len(analyses)} analyses, {fit_checks} fit jobs, {api_checked} models through the API.\n")
    W(f"**Run twice: {len(twice)}**" + ("" if not twice else "\n\n" + "\n".join(f"- {x}" for x in twice[:30])) + "\n")
    W(f"**Consistency violations: {len(incons)}**" + ("" if not incons else "\n\n" + "\n".join(f"- {x}" for x in incons[:30])) + "\n")
    if twice:
        fail_reasons.append(f"run twice: {len(twice)}")
    if incons:
        fail_reasons.append(f"{len(incons)} consistency violations")

    # ---------------- checksums
    W("## Checksums\n")
    W("The API exposes no weights checksum, and `model_versions` has no checksum column: a version's `weights` blob is "
      "the model file (`PFCMODEL`, format version, architecture JSON, parameter table, Float32 data) ending in the "
      "CRC-32 of every preceding byte. For every row of `model_versions` this recomputes that CRC-32 (zlib) and walks "
      "the whole parameter table; for every dataset it recomputes the SHA-256 of its blob chunks (in `seq` order) against "
      "`datasets.checksum` and `byte_size`. Then every version is loaded by the server itself: a predict with "
      "`version` set (the server decodes and CRC-checks the file) must answer 200.\n")
    n_ok, bad = 0, []
    for r in db.stream("SELECT model_id, version, encode(weights, 'hex') FROM model_versions ORDER BY model_id, version"):
        why = verify_model_file(bytes.fromhex(r[2]))
        if why:
            bad.append(f"model {r[0]} version {r[1]}: {why}")
        else:
            n_ok += 1
    d_ok, d_bad = 0, []
    ds_meta = {r[0]: (r[1], int(r[2])) for r in db.rows("SELECT id, checksum, byte_size FROM datasets")}
    hashers = {d: [hashlib.sha256(), 0] for d in ds_meta}
    for r in db.stream("SELECT dataset_id, encode(data, 'hex') FROM dataset_blobs ORDER BY dataset_id, seq"):
        if r[0] in hashers:
            b = bytes.fromhex(r[1])
            hashers[r[0]][0].update(b)
            hashers[r[0]][1] += len(b)
    for d, (want, size) in ds_meta.items():
        got, n = hashers[d][0].hexdigest(), hashers[d][1]
        if got != want or n != size:
            d_bad.append(f"dataset {d}: sha256 {got[:12]}… vs stored {want[:12]}…, {n} bytes vs {size}")
        else:
            d_ok += 1
    # Through the server.
    p_ok, p_bad, p_skip = 0, [], 0
    t_deadline = now() + 180
    rows, _ = load.subset(1)
    for m, vs in versions.items():
        key = key_of.get(model_tenant.get(m))
        for v in sorted(vs):
            if now() > t_deadline:
                p_skip += 1
                continue
            try:
                s, b, _ = client.call(key, "POST", "POST /v1/models/{id}/predict (final check)", f"/v1/models/{m}/predict",
                                      {"inputs": rows, "version": v, "top": 1}, retry=True)
            except NoAnswer as e:
                p_bad.append(f"model {m} version {v}: {e}")
                continue
            if s == 200 and b.get("model_version") == v:
                p_ok += 1
            else:
                p_bad.append(f"model {m} version {v}: predict {s} {str(b)[:200]}")
    W(f"- model versions: **{n_ok} verified, {len(bad)} mismatched**")
    W(f"- datasets: **{d_ok} verified, {len(d_bad)} mismatched**")
    W(f"- versions loaded by the server (predict at that version): {p_ok} answered 200, {len(p_bad)} did not"
      + (f", {p_skip} skipped (3-minute budget)" if p_skip else ""))
    for x in (bad + d_bad)[:20]:
        W(f"  - {x}")
    for x in p_bad[:10]:
        W(f"  - {x}")
    W("")
    if bad or d_bad:
        fail_reasons.append(f"checksum mismatches: {len(bad)} versions, {len(d_bad)} datasets")
    if p_bad:
        fail_reasons.append(f"{len(p_bad)} stored versions the server could not load")

    # ---------------- memory
    W("## Resident memory (VmRSS, sampled every 10 s)\n")
    W("A `kill -9` restart starts a new process, so growth is measured per process lifetime (segment). Warm-up is "
      "the first 25 % of a segment; growth = (median of the last 3 samples before the load stopped) ÷ (median of the "
      "3 samples from the end of the warm-up) − 1. Only segments that lived ≥ 4 minutes under load get a verdict "
      "(shorter ones are listed). The limit is 10 %.\n")
    W("The last column is the least-squares slope of RSS over the second half of the lifetime: near 0 for a plateau, "
      "positive and steady for a leak.\n")
    W("| replica | pid | lifetime (s of the run) | ended by | samples | RSS at start / after warm-up / at the end / peak (MB) | growth after warm-up | MB/min, 2nd half |")
    W("|---|---:|---|---|---:|---|---:|---:|")
    load_end = t_load_end - t_start
    mem_fail = []
    for rep in replicas:
        for seg in rep.segments:
            s = [(t, kb) for t, kb in seg["samples"] if t <= load_end]
            t0 = seg["t0"] - t_start
            t1 = (seg["t1"] - t_start) if seg["t1"] else load_end
            t1 = min(t1, load_end)
            life = t1 - max(t0, 0)
            if len(s) < 4:
                W(f"| {rep.name} | {seg['pid']} | {max(t0, 0):.0f}–{t1:.0f} | {seg['end'] or 'still running'} | {len(s)} | – | – | – |")
                continue
            warm_t = max(t0, 0) + 0.25 * life
            after = [kb for t, kb in s if t >= warm_t][:3]
            last = [kb for _, kb in s[-3:]]
            base, end = statistics.median(after), statistics.median(last)
            g = end / base - 1
            verdict = f"{g * 100:+.1f} %"
            if life >= 240:
                verdict = f"**{verdict}**" + (" ✗" if g >= 0.10 else "")
                if g >= 0.10:
                    mem_fail.append(f"{rep.name} pid {seg['pid']}: {g * 100:+.1f} %")
            else:
                verdict += " (short)"
            half = [(t, kb) for t, kb in s if t >= max(t0, 0) + life / 2]
            slope = "–"
            if len(half) >= 3:
                mt = statistics.mean(t for t, _ in half)
                mk = statistics.mean(kb for _, kb in half)
                den = sum((t - mt) ** 2 for t, _ in half)
                if den > 0:
                    slope = f"{sum((t - mt) * (kb - mk) for t, kb in half) / den * 60 / 1024:+.2f}"
            W(f"| {rep.name} | {seg['pid']} | {max(t0, 0):.0f}–{t1:.0f} | {seg['end'] or 'SIGTERM after the checks'} | {len(s)} | "
              f"{s[0][1] / 1024:.0f} / {base / 1024:.0f} / {end / 1024:.0f} / {max(kb for _, kb in s) / 1024:.0f} | {verdict} | {slope} |")
    W("")
    W("RSS over time (MB; one column per replica, a new pid after each restart):\n")
    W("```")
    W("   t (s)  " + "  ".join(f"{r.name:>16}" for r in replicas))
    grid = collections.defaultdict(dict)
    for rep in replicas:
        for seg in rep.segments:
            for t, kb in seg["samples"]:
                grid[int(t // 30) * 30][rep.name] = (seg["pid"], kb)
    for t in sorted(grid):
        W(f"  {t:6d}  " + "  ".join(f"{(str(round(grid[t][r.name][1] / 1024)) + ' (' + str(grid[t][r.name][0]) + ')') if r.name in grid[t] else '-':>16}"
                                    for r in replicas))
    W("```\n")
    if mem_fail:
        findings.append("RSS growth ≥ 10 % after warm-up: " + ", ".join(mem_fail))
        fail_reasons.append("RSS growth ≥ 10 % after warm-up: " + ", ".join(mem_fail))

    # ---------------- crashes
    W("## Crashes (a replica that exited without being killed)\n")
    if not faults.crashes:
        W("None.\n")
    for c in faults.crashes:
        fail_reasons.append(f"{c['replica']} crashed at {c['t']:.0f} s (exit {c['rc']})")
        W(f"### {c['replica']} at {c['t']:.0f} s, exit status {c['rc']}\n")
        W("Requests in flight on it:\n")
        for r in c["inflight"]:
            W(f"- {r[0]} `{r[1]} {r[2]}` body `{str(r[3])[:200]}`")
        W("\nLog tail:\n\n```\n" + c["log"] + "\n```\n")
    W("## Shutdown\n\n@@SHUTDOWN@@\n")
    W("## Load mix (operations)\n")
    W(", ".join(f"{k}: {v}" for k, v in sorted(load.ops.items())) + "\n")
    return {"text": "\n".join(L), "fail": bool(fail_reasons), "fail_reasons": fail_reasons, "findings": findings}


if __name__ == "__main__":
    main()
