"""What the benchmarks share: a control plane, processes under test, watches, /proc and metrics readers.

Everything runs on loopback. A benchmark gets a fresh control plane (DevCluster in
a temporary directory) unless PARAMEDIC_KUBECONFIG names a running one; the
processes under test are the real entry points (`paramedic-operator`,
`paramedic-webhook` under gunicorn), started as subprocesses.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devtools.cluster import REPO, DevCluster, apply_crds, free_port, tools_bin
from devtools.proc import cmdline
from devtools.wait import wait_for as _wait_for
from paramedic import kube

VENV_BIN = Path(sys.executable).parent
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- results ----------------------------------------------------------------------------


@dataclass
class Check:
    """One target: `value op limit`."""

    what: str
    value: float
    op: str          # "<=", ">=", "=="
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return False
        return {"<=": self.value <= self.limit, ">=": self.value >= self.limit,
                "==": self.value == self.limit}[self.op]

    def line(self) -> str:
        return f"{self.what}: {fmt(self.value)}{self.unit} (target {self.op} {fmt(self.limit)}{self.unit}) " \
               f"{'MET' if self.met else 'MISSED'}"


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    def figure(self, key: str, value: Any) -> None:
        self.figures[key] = value
        log(f"{key}: {fmt(value)}")

    def check(self, what: str, value: float, op: str, limit: float, unit: str = "") -> None:
        c = Check(what, value, op, limit, unit)
        self.checks.append(c)
        log(c.line())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 1), "error": self.error,
                "figures": self.figures, "notes": self.notes,
                "checks": [{"what": c.what, "value": c.value, "op": c.op, "limit": c.limit, "unit": c.unit,
                            "met": c.met} for c in self.checks]}


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if v else "0"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(data)))
    return data[rank - 1]


# --- the control plane ----------------------------------------------------------------


@contextlib.contextmanager
def control_plane(workdir: Path, real_node: bool = False) -> Iterator[Path]:
    """A kubeconfig with the CRDs applied: PARAMEDIC_KUBECONFIG's cluster, else a fresh one in `workdir`,
    with the machine's real node when `real_node` (kwok's node alone otherwise)."""
    existing = os.environ.get("PARAMEDIC_KUBECONFIG")
    if existing:
        apply_crds(Path(existing))
        yield Path(existing)
        return
    cluster = DevCluster(root=workdir / "cluster", kubeconfig=workdir / "kubeconfig",
                         real_node="1" if real_node else "0")
    started = time.monotonic()
    try:
        cluster.up(log=lambda msg: None)
        apply_crds(cluster.kubeconfig)
        log(f"control plane up in {time.monotonic() - started:.0f}s ({workdir})")
        yield cluster.kubeconfig
    finally:
        cluster.down(quiet=True)


def kubectl(kubeconfig: Path, *args: str) -> str:
    out = subprocess.run([str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                         check=True, capture_output=True, text=True)
    return out.stdout


class Context:
    """One benchmark's cluster, client, scratch directory and namespaces (deleted at the end)."""

    def __init__(self, kubeconfig: Path, workdir: Path, quick: bool, private: bool = False):
        self.kubeconfig = kubeconfig
        self.private = private  # a cluster of our own, torn down afterwards: no need to delete namespaces
        self.workdir = workdir
        self.quick = quick
        self.conn = kube.Connection.load(str(kubeconfig))
        self.client = kube.KubeClient(self.conn, timeout=60, max_connections=64)
        self._namespaces: list[str] = []
        self._closers: list[Callable[[], None]] = []

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.client.create(kube.NAMESPACES, {"metadata": {"name": name}})
        self._namespaces.append(name)
        # The default ServiceAccount is needed before pods can be created there.
        return name

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception as exc:  # cleanup goes on
                log(f"cleanup: {exc}")
        for ns in [] if self.private else self._namespaces:
            try:
                self.client.delete(kube.NAMESPACES, ns)
            except Exception as exc:
                log(f"cleanup of namespace {ns}: {exc}")
        self.client.close()


def create_all(client: kube.KubeClient, res: kube.Resource, namespace: str, bodies: list[dict],
               threads: int = 32) -> float:
    """Create `bodies` concurrently (existing ones are kept); seconds taken."""
    started = time.monotonic()

    def one(body: dict) -> None:
        for attempt in range(5):
            try:
                client.create(res, body, namespace)
                return
            except kube.Conflict:
                return
            except kube.Unavailable:
                time.sleep(0.2 * (attempt + 1))
        client.create(res, body, namespace)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, bodies))
    return time.monotonic() - started


def deployment(name: str, replicas: int = 1) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "registry.local/bench:1"}]}}}}


def alert_incident(ns: str, svc: str, i: int, bench: str, now: datetime) -> dict:
    """The i-th alert-sourced Incident of `svc` as the receiver would create it (without status)."""
    from paramedic.domain.vocabulary import SEVERITIES
    from paramedic.ingest import build_incident

    body = build_incident(ns, f"{svc}-inc-{i:05d}", service=svc, severity=SEVERITIES[i % 4],
                          title=f"{svc} alert {i}", description=f"created by the {bench} benchmark",
                          source="alertmanager", labels={"alertname": f"Bench-{bench}", "service": svc}, now=now)
    return {k: v for k, v in body.items() if k != "status"}


# The benchmarks poll at 0.5 s unless told otherwise (what they measured with).
wait_for = functools.partial(_wait_for, interval=0.5)


def utc_iso(when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# --- watches ----------------------------------------------------------------------------


class Watcher:
    """A watch on one resource in one namespace, in a thread: `on_event(type, obj, monotonic_time)`.

    Existing objects are delivered as ADDED first (from a LIST); the watch
    resumes from the last resourceVersion and relists after 410 Gone.
    """

    def __init__(self, conn: kube.Connection, res: kube.Resource, namespace: str,
                 on_event: Callable[[str, dict, float], None]):
        self.conn = conn
        self.res = res
        self.namespace = namespace
        self.on_event = on_event
        self._stop = threading.Event()
        self._http = httpx.Client(base_url=conn.host, verify=conn.verify, timeout=httpx.Timeout(10, read=90))
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{res.plural}")
        self._rv = ""
        self.synced = threading.Event()

    def _headers(self) -> dict[str, str]:
        tok = self.conn.token()
        return {"Accept": "application/json", **({"Authorization": tok} if tok else {})}

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._http.close()

    def _list(self) -> None:
        r = self._http.get(self.res.path(self.namespace), headers=self._headers())
        r.raise_for_status()
        out = r.json()
        now = time.monotonic()
        for item in out.get("items", []):
            self.on_event("ADDED", item, now)
        self._rv = out["metadata"]["resourceVersion"]
        self.synced.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._rv:
                    self._list()
                params = {"watch": "1", "resourceVersion": self._rv, "allowWatchBookmarks": "true",
                          "timeoutSeconds": "60"}
                with self._http.stream("GET", self.res.path(self.namespace), params=params,
                                       headers=self._headers()) as resp:
                    if resp.status_code == 410:
                        self._rv = ""
                        continue
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if self._stop.is_set():
                            return
                        if not line:
                            continue
                        now = time.monotonic()
                        ev = json.loads(line)
                        obj = ev.get("object") or {}
                        if ev.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                self._rv = ""
                            break
                        self._rv = (obj.get("metadata") or {}).get("resourceVersion") or self._rv
                        if ev.get("type") != "BOOKMARK":
                            self.on_event(ev["type"], obj, now)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log(f"watch {self.res.plural}: {exc.__class__.__name__}: {exc}; resuming")
                time.sleep(0.5)


# --- processes --------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # fields from #3 (state) on


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU of the process (and its descendants), from /proc."""
    total = 0
    for p in (process_tree(pid) if tree else [pid]):
        try:
            f = _stat_fields(p)
        except (OSError, ValueError):
            continue
        total += int(f[11]) + int(f[12])  # utime, stime
    return total / CLK_TCK


def rss_bytes(pid: int, tree: bool = True) -> int:
    total = 0
    for p in (process_tree(pid) if tree else [pid]):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def control_plane_pids(kubeconfig: Path) -> dict[str, int]:
    """kube-apiserver and etcd pids of the cluster `kubeconfig` points at (by port), when local."""
    from urllib.parse import urlsplit

    conn = kube.Connection.load(str(kubeconfig))
    port = str(urlsplit(conn.host).port)
    out: dict[str, int] = {}
    procs = {int(e): cmdline(int(e)) for e in os.listdir("/proc") if e.isdigit()}
    etcd_url = ""
    for pid, args in procs.items():
        if args and args[0].endswith("kube-apiserver") and port in args:
            out["kube-apiserver"] = pid
            etcd_url = args[args.index("--etcd-servers") + 1] if "--etcd-servers" in args else ""
    for pid, args in procs.items():
        if etcd_url and args and args[0].endswith("etcd") and etcd_url in args:
            out["etcd"] = pid
    return out


class CpuMeter:
    """CPU seconds of several processes over a window: `start()`, then `shares(elapsed)`."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def used(self) -> dict[str, float]:
        return {k: cpu_seconds(p) - self._start.get(k, 0.0) for k, p in self.pids.items()}


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def start_targets_process(ctx: Context, args: list[str], ports_file: Path, cpus: str | None = None,
                          timeout: float = 120) -> list[int]:
    """A process of HTTP targets (`python -m <args>`) that writes its ports to `ports_file`
    once all listen; stopped with the context."""
    ports_file.unlink(missing_ok=True)
    proc = Proc("targets", [str(VENV_BIN / "python"), "-m", *args, "--ports-file", str(ports_file)],
                dict(os.environ), ctx.workdir / "targets.log", cpus=cpus, cwd=REPO)
    proc.start()
    ctx.on_close(proc.stop)

    def listening() -> bool:
        if not proc.alive():
            raise RuntimeError(f"targets exited: {proc.tail()}")
        return ports_file.exists()
    wait_for(listening, timeout, "targets listening", interval=0.2)
    return [int(x) for x in ports_file.read_text().split()]


class Proc:
    """A subprocess in its own session, optionally pinned with taskset, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path, cpus: str | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.cwd = cwd
        self.args = (["taskset", "-c", cpus] if cpus else []) + args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Proc:
        log_file = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd)
        log_file.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def base_env(kubeconfig: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PARAMEDIC_KUBECONFIG": str(kubeconfig), "KUBECONFIG": str(kubeconfig),
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
    return env


class Operator(Proc):
    """`paramedic-operator --standalone --namespace NS...`, pinned to `cpus` when given; with `identity`,
    `--identity NAME` instead: a replica sharing the shards with the others through Leases."""

    def __init__(self, ctx: Context, namespaces: list[str], cpus: str | None = "0",
                 env: dict[str, str] | None = None, identity: str | None = None):
        self.metrics_port = free_port()
        self.health_port = free_port()
        e = base_env(ctx.kubeconfig)
        e.update({"PARAMEDIC_METRICS_PORT": str(self.metrics_port), "PARAMEDIC_HEALTH_PORT": str(self.health_port),
                  "PARAMEDIC_PLAYBOOKS_DIR": str(REPO / "playbooks"), "PARAMEDIC_NAMESPACE": namespaces[0],
                  # The probe targets and hooks are loopback stand-ins: the admin allowlist names them.
                  "PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,10.77.0.0/24"})
        e.update(env or {})
        self.identity = identity or ""
        args = [str(VENV_BIN / "paramedic-operator"), *(["--identity", identity] if identity else ["--standalone"])]
        for ns in namespaces:
            args += ["--namespace", ns]
        suffix = f"-{identity}" if identity else ""
        super().__init__("operator", args, e, ctx.workdir / f"operator-{namespaces[0]}{suffix}.log", cpus, cwd=REPO)
        ctx.on_close(self.stop)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"operator exited:\n{self.tail()}")
            try:
                return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(ready, timeout, "operator metrics endpoint", interval=0.1)

    def metrics(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")


class Webhook(Proc):
    """`paramedic-webhook --bind 127.0.0.1:PORT` (gunicorn, production defaults: 1 worker, 8 threads)."""

    def __init__(self, ctx: Context, namespace: str, token: str, cpus: str | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None):
        self.port = free_port()
        self.token = token
        e = base_env(ctx.kubeconfig)
        # The benchmarks are one team's set-up: their token may write every namespace they use,
        # and its alerts may trigger remediation (alert_to_restart measures exactly that).
        e.update({"PARAMEDIC_WEBHOOK_TOKEN": token, "PARAMEDIC_NAMESPACE": namespace,
                  "PARAMEDIC_WEBHOOK_TOKEN_NAMESPACES": "*", "PARAMEDIC_WEBHOOK_TOKEN_REMEDIATE": "true"})
        e.update(env or {})
        super().__init__("webhook", [str(VENV_BIN / "paramedic-webhook"), "--bind", f"127.0.0.1:{self.port}",
                                     *(args or [])],
                         e, ctx.workdir / f"webhook-{namespace}.log", cpus)
        ctx.on_close(self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"webhook exited:\n{self.tail()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(ready, timeout, "webhook /readyz", interval=0.1)


# --- Prometheus text ------------------------------------------------------------------


def scrape(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """Samples by metric family name: [(sample name, labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=10).text
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, dict(s.labels), float(s.value)) for s in fam.samples]
    return out


@dataclass
class Histogram:
    buckets: list[tuple[float, float]]  # (le, cumulative count), ascending, +Inf last
    count: float
    sum: float

    @classmethod
    def from_samples(cls, samples: list[tuple[str, dict[str, str], float]]) -> Histogram:
        buckets, count, total = [], 0.0, 0.0
        for name, labels, value in samples:
            if name.endswith("_bucket"):
                buckets.append((float(labels["le"]), value))
            elif name.endswith("_count"):
                count = value
            elif name.endswith("_sum"):
                total = value
        buckets.sort()
        return cls(buckets, count, total)

    def minus(self, earlier: Histogram) -> Histogram:
        before = dict(earlier.buckets)
        return Histogram([(le, c - before.get(le, 0.0)) for le, c in self.buckets],
                         self.count - earlier.count, self.sum - earlier.sum)

    def quantile(self, q: float) -> float:
        """Prometheus' histogram_quantile: linear within the bucket (q in 0..1)."""
        if self.count <= 0 or not self.buckets:
            return float("nan")
        rank = q * self.count
        prev_le, prev_c = 0.0, 0.0
        for le, c in self.buckets:
            if c >= rank:
                if math.isinf(le):
                    return prev_le  # past the last finite bucket: its bound is all we know
                if c == prev_c:
                    return le
                return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
            prev_le, prev_c = le, c
        return prev_le


def histogram(metrics: dict, family: str) -> Histogram:
    return Histogram.from_samples(metrics.get(family, []))


def counter(metrics: dict, family: str, **labels: str) -> float:
    return sum(v for name, lab, v in metrics.get(family, [])
               if not name.endswith("_created") and all(lab.get(k) == x for k, x in labels.items()))


# --- Alertmanager payloads -------------------------------------------------------------


def am_alert(labels: dict[str, str], starts_at: str, fingerprint: str, status: str = "firing",
             ends_at: str = "0001-01-01T00:00:00Z", summary: str = "") -> dict:
    return {"status": status, "labels": labels,
            "annotations": {"summary": summary or f"{labels.get('alertname', 'alert')} on {labels.get('service')}"},
            "startsAt": starts_at, "endsAt": ends_at,
            "generatorURL": "http://prometheus.local/graph?g0.expr=up", "fingerprint": fingerprint}


def am_payload(alerts: list[dict], group_labels: dict[str, str]) -> dict:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {"version": "4", "groupKey": "{}:" + json.dumps(group_labels, sort_keys=True), "truncatedAlerts": 0,
            "status": status, "receiver": "paramedic", "groupLabels": group_labels,
            "commonLabels": group_labels, "commonAnnotations": {}, "externalURL": "http://alertmanager.local",
            "alerts": alerts}


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"paramedic-bench-{name}-"))


def operator_and_webhook(ctx: Context, ns: str, token: str) -> tuple[Operator, Webhook]:
    """Both processes for `ns`, started and ready, every MonitoredService there reconciled.
    With PARAMEDIC_BENCH_REPLICAS=N (N > 1), N operator replicas sharing the shards through
    Leases; the first is returned (its CPU and requests are one replica's share)."""
    replicas = int(os.environ.get("PARAMEDIC_BENCH_REPLICAS", "1"))
    ops = [Operator(ctx, [ns], cpus=None, identity=f"replica-{i}" if replicas > 1 else None)
           for i in range(replicas)]
    op, hook = ops[0], Webhook(ctx, ns, token)
    for o in ops:
        o.start()
    hook.start()
    for o in ops:
        o.wait_ready()
    hook.wait_ready()
    if replicas > 1:
        wait_for(lambda: {(m.get("status") or {}).get("handledBy") for m in ctx.client.list(kube.MONITORED_SERVICES, ns)}
                 == {o_.identity for o_ in ops} or None, 120, "the services shared by every replica", interval=1)
    wait_for(lambda: all((m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
                         for m in ctx.client.list(kube.MONITORED_SERVICES, ns)), 120,
             "operator reconciled the MonitoredServices", interval=1)
    return op, hook
