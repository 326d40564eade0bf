#!/usr/bin/env bash
# CI check for the files no engine runs here (no Docker daemon, no cluster): every YAML under
# deploy/ and openapi.yaml parses; docker-compose, the Kubernetes manifests and the Dockerfile
# state the facts the deployment relies on; the Dockerfile installs the apt packages
# scripts/setup.sh lists and builds the product CI builds; openapi.yaml is a valid OpenAPI 3.1
# document and the Service target embeds it (Sources/Service/OpenAPI/openapi.yaml links to it).
#   scripts/check-deploy.sh        (exits non-zero, naming every failed check)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null || { echo "check-deploy: python3 is required" >&2; exit 2; }
pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@" >&2 \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@" >&2
}
if ! python3 -c 'import yaml, openapi_spec_validator' 2>/dev/null; then
    echo "check-deploy: installing pyyaml and openapi-spec-validator (PyPI)" >&2
    pip_install pyyaml openapi-spec-validator \
        || { echo "check-deploy: could not pip install pyyaml openapi-spec-validator" >&2; exit 2; }
fi

exec python3 - <<'PY'
import base64, glob, json, os, re, shlex, sys
import yaml

failures, passed = [], 0

def check(ok, what):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
    return ok

def load_all(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except Exception as e:  # noqa: BLE001 — any parse error is a failure to report
        check(False, f"{path}: does not parse as YAML: {e}")
        return None

# ---- every YAML parses -------------------------------------------------------------------------
yaml_files = sorted(glob.glob("deploy/**/*.y*ml", recursive=True)) + ["openapi.yaml"]
docs = {}
for path in yaml_files:
    loaded = load_all(path)
    if loaded is not None and check(len(loaded) > 0, f"{path}: empty"):
        docs[path] = loaded

# ---- docker-compose ----------------------------------------------------------------------------
compose_path = "deploy/docker-compose.yml"
compose = (docs.get(compose_path) or [{}])[0]
services = compose.get("services") or {}
check(os.path.exists(compose_path), f"{compose_path}: missing")

def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}

def networks_of(service):
    n = service.get("networks") or ["default"]
    return set(n if isinstance(n, list) else n.keys())

postgres = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("postgres:15")}
if check(len(postgres) == 1, f"{compose_path}: expected one service with image postgres:15*, found {sorted(postgres)}"):
    pg_name, pg = next(iter(postgres.items()))
    check(bool((pg.get("healthcheck") or {}).get("test")), f"{compose_path}: {pg_name} has no healthcheck")
    check(any(str(v).endswith(":/var/lib/postgresql/data") for v in pg.get("volumes") or []),
          f"{compose_path}: {pg_name} keeps no volume at /var/lib/postgresql/data")
    servers = {name: s for name, s in services.items() if isinstance(s.get("build"), dict) or isinstance(s.get("build"), str)}
    replicas = sum(int(((s.get("deploy") or {}).get("replicas")) or 1) for s in servers.values())
    check(replicas >= 2, f"{compose_path}: {replicas} pfc-server replica(s) built from the Dockerfile; need ≥ 2")
    for name, s in servers.items():
        build = s["build"] if isinstance(s["build"], dict) else {"context": s["build"]}
        dockerfile = os.path.normpath(os.path.join("deploy", build.get("context", "."), build.get("dockerfile", "Dockerfile")))
        check(dockerfile == "Dockerfile", f"{compose_path}: {name} builds {dockerfile}, not the repository's Dockerfile")
        url = env_of(s).get("PFC_DATABASE_URL", "")
        check(re.fullmatch(rf"postgres(ql)?://[^@/]+@{re.escape(pg_name)}:5432/\w+", url) is not None,
              f"{compose_path}: {name} PFC_DATABASE_URL={url!r} does not point at {pg_name}:5432")
        dep = s.get("depends_on") or {}
        cond = dep.get(pg_name, {}).get("condition") if isinstance(dep, dict) else None
        check(cond == "service_healthy", f"{compose_path}: {name} does not depend on {pg_name} being healthy")
        check(networks_of(s) & networks_of(pg), f"{compose_path}: {name} shares no network with {pg_name}")
    check(len({frozenset(networks_of(s)) for s in services.values()}) == 1,
          f"{compose_path}: services are not all on one network")

# ---- Kubernetes --------------------------------------------------------------------------------
k8s = [d for path, ds in docs.items() if path.startswith("deploy/kubernetes/") for d in ds]
by_kind = {}
for d in k8s:
    by_kind.setdefault(d.get("kind"), []).append(d)
for path, ds in docs.items():
    for d in ds:
        if path.startswith("deploy/kubernetes/") and d.get("kind") != "Kustomization":
            check("namespace" not in (d.get("metadata") or {}), f"{path}: manifests must be namespace-free")
deployments, secrets, k8s_services = by_kind.get("Deployment", []), by_kind.get("Secret", []), by_kind.get("Service", [])
if check(len(deployments) == 1, f"deploy/kubernetes: expected one Deployment, found {len(deployments)}"):
    dep = deployments[0]
    spec = dep.get("spec") or {}
    check(spec.get("replicas") == 2, f"Deployment: replicas is {spec.get('replicas')}, expected 2")
    pod = (spec.get("template") or {}).get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    check(((spec.get("selector") or {}).get("matchLabels") or {}).items() <= labels.items(),
          "Deployment: selector.matchLabels does not match the pod template's labels")
    containers = pod.get("containers") or []
    if check(len(containers) >= 1, "Deployment: no containers"):
        c = containers[0]
        ports = {p.get("name") for p in c.get("ports") or []} | {p.get("containerPort") for p in c.get("ports") or []}
        check(8080 in ports, "Deployment: the container does not expose port 8080")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = ((c.get(probe) or {}).get("httpGet")) or {}
            check(get.get("path") == path, f"Deployment: {probe} path is {get.get('path')!r}, expected {path}")
            check(get.get("port") in ports, f"Deployment: {probe} port {get.get('port')!r} is not a container port")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            check({"cpu", "memory"} <= set((res.get(part) or {}).keys()), f"Deployment: resources.{part} needs cpu and memory")
        sc_pod, sc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        check(sc.get("runAsNonRoot", sc_pod.get("runAsNonRoot")) is True, "Deployment: runAsNonRoot is not true")
        check(sc.get("runAsUser", sc_pod.get("runAsUser", 1)) != 0, "Deployment: runs as uid 0")
        check(sc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation is not false")
        env = {e.get("name"): e for e in c.get("env") or []}
        ref = (((env.get("PFC_DATABASE_URL") or {}).get("valueFrom") or {}).get("secretKeyRef")) or {}
        if check(bool(ref), "Deployment: PFC_DATABASE_URL does not come from a Secret (valueFrom.secretKeyRef)"):
            secret = next((s for s in secrets if (s.get("metadata") or {}).get("name") == ref.get("name")), None)
            if check(secret is not None, f"deploy/kubernetes: no Secret named {ref.get('name')!r} (the Deployment references it)"):
                values = dict(secret.get("stringData") or {})
                values.update({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})
                url = values.get(ref.get("key"))
                check(url is not None, f"Secret {ref.get('name')}: no key {ref.get('key')!r} (the Deployment references it)")
                check(url is None or re.match(r"postgres(ql)?://", url) is not None,
                      f"Secret {ref.get('name')}: {ref.get('key')} is not a postgres:// URL")
    if check(len(k8s_services) >= 1, "deploy/kubernetes: no Service"):
        svc = k8s_services[0].get("spec") or {}
        check((svc.get("selector") or {}).items() <= labels.items() and bool(svc.get("selector")),
              "Service: selector does not match the Deployment's pod labels")
        target = [p.get("targetPort") for p in svc.get("ports") or []]
        check(bool(target) and all(t in ports for t in target) if containers else False,
              f"Service: targetPort {target} is not a container port")
for kust in by_kind.get("Kustomization", []):
    for r in kust.get("resources") or []:
        check(os.path.exists(os.path.join("deploy/kubernetes", r)), f"kustomization.yaml: resource {r} does not exist")

# ---- Dockerfile vs scripts/setup.sh and the build CI runs --------------------------------------
def instructions(path):
    text = open(path, encoding="utf-8").read()
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        current += raw.rstrip()[:-1] + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                lines.append((word.upper(), rest.strip()))
            current = ""
    return lines

def apt_packages(run_args):
    pkgs = set()
    for cmd in re.split(r"&&|;|\|\|", run_args):
        words = shlex.split(cmd)
        if "apt-get" in words and "install" in words:
            pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs

setup = open("scripts/setup.sh", encoding="utf-8").read()
m = re.search(r"^packages=\(([^)]*)\)", setup, re.M)
setup_packages = set(m.group(1).split()) if m else set()
check(bool(setup_packages), "scripts/setup.sh: no packages=(…) line")
runtime_of = {"libopenblas-dev": "libopenblas0", "libpq-dev": "libpq5", "libsqlite3-dev": "libsqlite3-0", "libssl-dev": "libssl3"}
build_only = {"pkg-config"}
tests_only = {"postgresql"}  # the database server the tests start; images use a separate one

if check(os.path.exists("Dockerfile"), "Dockerfile: missing"):
    stages, stage = [], None
    for word, rest in instructions("Dockerfile"):
        if word == "FROM":
            stage = {"from": rest, "steps": []}
            stages.append(stage)
        elif stage is not None:
            stage["steps"].append((word, rest))
    if check(len(stages) >= 2, f"Dockerfile: {len(stages)} stage(s); expected a builder and a runtime stage"):
        builder, runtime = stages[0], stages[-1]
        check(re.match(r"swift:(\$\{SWIFT_VERSION\}|6[.\d]*)-bookworm\b", builder["from"]) is not None,
              f"Dockerfile: builder is FROM {builder['from']!r}, expected swift:6.x-bookworm")
        check(runtime["from"].startswith("debian:bookworm-slim"), f"Dockerfile: runtime is FROM {runtime['from']!r}, expected debian:bookworm-slim")
        builder_runs = " && ".join(r for w, r in builder["steps"] if w == "RUN")
        runtime_runs = " && ".join(r for w, r in runtime["steps"] if w == "RUN")
        missing = (setup_packages - tests_only) - apt_packages(builder_runs)
        check(not missing, f"Dockerfile: the builder does not apt-get install {sorted(missing)} (scripts/setup.sh lists them)")
        for dev in sorted(setup_packages - tests_only - build_only):
            rt = runtime_of.get(dev)
            if check(rt is not None, f"check-deploy: no runtime package known for {dev} (setup.sh lists it); add it to runtime_of"):
                check(rt in apt_packages(runtime_runs), f"Dockerfile: the runtime does not apt-get install {rt} (for {dev})")
        for pkg in ("ca-certificates", "curl"):
            check(pkg in apt_packages(runtime_runs), f"Dockerfile: the runtime does not apt-get install {pkg}")
        check(re.search(r"swift build -c release --product pfc-server\b", builder_runs) is not None,
              "Dockerfile: the builder does not run `swift build -c release --product pfc-server`")
        check("--static-swift-stdlib" in builder_runs, "Dockerfile: the builder does not link --static-swift-stdlib")
        check(re.search(r'\.executable\(name: "pfc-server"', open("Package.swift", encoding="utf-8").read()) is not None,
              "Package.swift: no executable product pfc-server (the Dockerfile builds it)")
        steps = {}
        for w, r in runtime["steps"]:
            steps.setdefault(w, []).append(r)
        check(any("--from=" in r and "pfc-server" in r for r in steps.get("COPY", [])), "Dockerfile: the runtime does not COPY --from the builder's pfc-server")
        users = steps.get("USER", [])
        check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: the runtime's USER is {users[-1:] or 'unset (root)'}")
        check(any(re.search(r"\b8080\b", r) for r in steps.get("EXPOSE", [])), "Dockerfile: no EXPOSE 8080")
        check(any("/healthz" in r for r in steps.get("HEALTHCHECK", [])), "Dockerfile: no HEALTHCHECK on /healthz")
        check(any(re.search(r"PFC_DATA_DIR[= ]/data\b", r) for r in steps.get("ENV", [])), "Dockerfile: no ENV PFC_DATA_DIR=/data")
        check(any("/data" in r for r in steps.get("VOLUME", [])), "Dockerfile: no VOLUME /data")
        entry = steps.get("ENTRYPOINT", ["[]"])[-1]
        check(json.loads(entry) == ["pfc-server"] if entry.startswith("[") else False, f"Dockerfile: ENTRYPOINT is {entry}, expected [\"pfc-server\"]")
        cmd = steps.get("CMD", ["[]"])[-1]
        cmd_argv = json.loads(cmd) if cmd.startswith("[") else []
        check(cmd_argv[:1] == ["serve"] and "0.0.0.0" in cmd_argv and "8080" in cmd_argv,
              f"Dockerfile: CMD is {cmd}, expected [\"serve\", \"--host\", \"0.0.0.0\", \"--port\", \"8080\"]")
if check(os.path.exists(".dockerignore"), ".dockerignore: missing"):
    ignored = {l.strip().rstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")}
    needed = {"Package.swift", "Sources", "Tests", "Benchmarks", "Fuzz", "Plugins", "migrations", "openapi.yaml"}  # the manifest names targets in each; the build embeds the last two
    check(not (ignored & needed), f".dockerignore: excludes {sorted(ignored & needed)}, which the build needs")

# ---- openapi.yaml ------------------------------------------------------------------------------
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
try:
    spec, _ = read_from_filename("openapi.yaml")
    validate(spec)
    check(True, "")
except Exception as e:  # noqa: BLE001
    check(False, f"openapi.yaml: not a valid OpenAPI document: {str(e).splitlines()[0]}")
    spec = {}
if spec:
    check(str(spec.get("openapi", "")).startswith("3.1."), f"openapi.yaml: openapi is {spec.get('openapi')}, expected 3.1.x")
    schemes = ((spec.get("components") or {}).get("securitySchemes") or {})
    check(any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values()), "openapi.yaml: no http bearer securityScheme")
    check(bool(spec.get("security")), "openapi.yaml: no global security requirement")
    op_ids = []
    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            op_ids.append(op.get("operationId"))
            codes = set(map(str, (op.get("responses") or {}).keys()))
            if path.startswith("/v1/"):
                check("401" in codes, f"openapi.yaml: {method.upper()} {path} does not document 401")
                check("security" not in op, f"openapi.yaml: {method.upper()} {path} overrides the global bearer security")
            else:
                check(op.get("security") == [], f"openapi.yaml: {method.upper()} {path} should need no key (security: [])")
    check(None not in op_ids and len(op_ids) == len(set(op_ids)), "openapi.yaml: operationIds missing or not unique")
    # The binary embeds the document through SwiftPM (.embedInCode) from a link to this very file.
    embedded_path = "Sources/Service/OpenAPI/openapi.yaml"
    check(os.path.islink(embedded_path) and os.path.realpath(embedded_path) == os.path.realpath("openapi.yaml"),
          f"{embedded_path}: not a symbolic link to openapi.yaml")
    check('.embedInCode("OpenAPI/openapi.yaml")' in open("Package.swift", encoding="utf-8").read(),
          "Package.swift: the Service target does not embed OpenAPI/openapi.yaml")

for f in failures:
    print(f"check-deploy: FAIL {f}", file=sys.stderr)
print(f"check-deploy: {len(failures)} of {passed + len(failures)} checks failed" if failures
      else f"check-deploy: all {passed} checks hold")
sys.exit(1 if failures else 0)
PY
