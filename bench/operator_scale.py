"""operator_scale: 5,000 Incidents and 2,000 MonitoredServices waiting when the operator starts.

The objects are created first (concurrently, straight to the API server): 2,000
alert-driven MonitoredServices in 10 teams with their OnCallSchedules, and
5,000 open Incidents spread over them, as the webhook creates them. Then one
operator starts. A watch from this process notes when each object is handled:
an Incident once its status has createdAt and observedGeneration, a
MonitoredService once status.observedGeneration matches its generation. After
that, once nothing is due any more (every Incident has its first evidence and no
notification pending, as the watch shows), the operator is measured at rest: its CPU and
RSS from /proc, its API requests (its own counter) and the writes to the benchmark's
objects the watches see, over a window longer than one evidence refresh period in the
full run, in slices, so periodic work shows. Last, the floor: the API requests handling needs at the least, sent by a plain
script (see `write_floor`), to tell the operator's cost from the API server's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from devtools.wait import WaitTimeout
from paramedic import kube

from .common import (
    Context,
    CpuMeter,
    Operator,
    Result,
    Watcher,
    alert_incident,
    control_plane_pids,
    cpu_seconds,
    create_all,
    deployment,
    log,
    peak_rss_bytes,
    rss_bytes,
    wait_for,
)

NAME = "operator_scale"
TEAMS = 10


class Handled:
    """When each object first looked handled (monotonic time)."""

    def __init__(self, test) -> None:
        self.test = test
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()

    def on_event(self, type_: str, obj: dict, now: float) -> None:
        if type_ == "DELETED" or not self.test(obj):
            return
        with self.lock:
            self.first.setdefault(obj["metadata"]["name"], now)


def incident_handled(obj: dict) -> bool:
    st = obj.get("status") or {}
    return bool(st.get("createdAt")) and st.get("observedGeneration") is not None


def service_handled(obj: dict) -> bool:
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")


def nothing_due(obj: dict) -> bool:
    """An incident with its first evidence recorded and no notification waiting to be sent."""
    st = obj.get("status") or {}
    return bool((st.get("evidence") or {}).get("gatheredAt")) and not any(
        n.get("result") == "pending" for n in st.get("notifications") or [])


class Settled:
    """Which incidents have nothing due (latest view), and how many writes the watches saw."""

    def __init__(self) -> None:
        self.settled: set[str] = set()
        self.writes: dict[str, int] = {}
        self.done: dict[str, tuple[bool, bool]] = {}  # incident -> (assigned, a notification delivered)
        self.lock = threading.Lock()

    def counter(self, kind: str):
        def on_event(type_: str, obj: dict, now: float) -> None:
            with self.lock:
                self.writes[kind] = self.writes.get(kind, 0) + 1
                if kind == "incidents":
                    name = obj["metadata"]["name"]
                    if type_ != "DELETED" and nothing_due(obj):
                        self.settled.add(name)
                    else:
                        self.settled.discard(name)
                    st = obj.get("status") or {}
                    self.done[name] = (bool(st.get("assignee")), any(
                        n.get("result") not in ("pending", None) for n in st.get("notifications") or []))
        return on_event

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.writes)


def request_counts(op: Operator) -> dict[str, float]:
    """The operator's requests to the API server so far, by method and resource (its own counter)."""
    counts: dict[str, float] = {}
    for sample, labels, value in op.metrics().get("paramedic_kube_api_requests", []):
        if not sample.endswith("_total"):
            continue
        what = f"{labels.get('method')} {labels.get('resource')}" + ("" if labels.get("code", "2")[:1] == "2"
                                                                       else f" ({labels.get('code')})")
        counts[what] = counts.get(what, 0) + value
    return counts


def show_counts(counts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.{0 if v >= 10 or v == int(v) else 2}f}"
                     for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v) or "-"


def api_requests(op: Operator) -> str:
    return show_counts(request_counts(op))


FLOOR_SHARE = 5
"""The floor writes 1/FLOOR_SHARE of the objects and is scaled up (it would otherwise double the run)."""


def write_floor(ctx: Context, incidents: list[dict], services: list[dict]) -> tuple[float, int]:
    """The API writes the operator makes to handle these objects once, made by a plain
    16-thread script on fresh copies in another namespace: per Incident a guarded spec
    PATCH (the assignee) and a status PATCH; per MonitoredService a GET of its target and
    a status PATCH. Returns (seconds scaled to all objects, requests sent)."""
    client = ctx.client
    ns = ctx.namespace("bench-scale-floor")
    client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)
    incs = [{**b, "metadata": {"name": b["metadata"]["name"]}} for b in incidents[::FLOOR_SHARE]]
    svcs = services[::FLOOR_SHARE]
    create_all(client, kube.MONITORED_SERVICES, ns, svcs, threads=48)
    create_all(client, kube.INCIDENTS, ns, incs, threads=48)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # The operator has the bodies from its watch: read them before the clock starts.
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in client.list(kube.INCIDENTS, ns)}

    def incident(body: dict) -> None:
        name = body["metadata"]["name"]
        obj = client.patch(kube.INCIDENTS, name, {"metadata": {"resourceVersion": versions[name]},
                                                  "spec": {"assignee": "p0-0@example.com"}}, ns)
        client.patch(kube.INCIDENTS, name, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                            "status": {"createdAt": now, "observedGeneration": obj["metadata"]["generation"],
                                                       "observedState": "open", "assignee": "p0-0@example.com"}},
                     ns, subresource="status")

    def service(body: dict) -> None:
        client.get(kube.DEPLOYMENTS, "bench-target", ns)
        client.patch(kube.MONITORED_SERVICES, body["metadata"]["name"], {"status": {"observedGeneration": 1}}, ns,
                     subresource="status")

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(incident, incs))
        list(pool.map(service, svcs))
    took = time.monotonic() - started
    return took * FLOOR_SHARE, 2 * (len(incs) + len(svcs))


def run(ctx: Context, result: Result) -> None:
    n_inc, n_svc = (1000, 400) if ctx.quick else (5000, 2000)
    limit = 90.0 if ctx.quick else 120.0  # the target is 60 s; past this the figure is "missed" anyway
    client = ctx.client
    ns = ctx.namespace("bench-scale")
    client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedules = [{"metadata": {"name": f"team-{t}"}, "spec": {
        "participants": [{"name": f"P{t}-{p}", "email": f"p{t}-{p}@example.com"} for p in range(3)],
        "rotation": {"start": start, "lengthHours": 24},
        "escalation": [{"afterMinutes": 0, "notify": "oncall"}, {"afterMinutes": 30, "notify": "next"}]}}
        for t in range(TEAMS)]
    services = [{"metadata": {"name": f"svc-{i:04d}"}, "spec": {
        "team": f"team-{i % TEAMS}", "severity": "high", "target": {"kind": "Deployment", "name": "bench-target"},
        "alertSelector": {"matchLabels": {"service": f"svc-{i:04d}"}}}} for i in range(n_svc)]
    now = datetime.now(UTC)
    incidents = []
    for i in range(n_inc):
        incidents.append(alert_incident(ns, f"svc-{i % n_svc:04d}", i, "operator_scale", now))
    took = create_all(client, kube.ONCALL_SCHEDULES, ns, schedules)
    took += create_all(client, kube.MONITORED_SERVICES, ns, services, threads=48)
    took += create_all(client, kube.INCIDENTS, ns, incidents, threads=48)
    log(f"created {n_svc} MonitoredServices and {n_inc} Incidents in {took:.1f}s")
    result.figure("objects created", f"{n_inc:,} Incidents + {n_svc:,} MonitoredServices + {TEAMS} OnCallSchedules "
                                     f"in {took:.1f}s")

    inc_seen, svc_seen, settled = Handled(incident_handled), Handled(service_handled), Settled()
    inc_count, svc_count = settled.counter("incidents"), settled.counter("monitoredservices")

    def on_incident(type_: str, obj: dict, now: float) -> None:
        inc_seen.on_event(type_, obj, now)
        inc_count(type_, obj, now)

    def on_service(type_: str, obj: dict, now: float) -> None:
        svc_seen.on_event(type_, obj, now)
        svc_count(type_, obj, now)

    watches = [Watcher(ctx.conn, kube.INCIDENTS, ns, on_incident).start(),
               Watcher(ctx.conn, kube.MONITORED_SERVICES, ns, on_service).start()]
    ctx.on_close(lambda: [w.stop() for w in watches])
    for w in watches:
        w.synced.wait(60)
    if inc_seen.first or svc_seen.first:
        raise RuntimeError("objects look handled before the operator started")

    op = Operator(ctx, [ns], cpus=None)
    op.start()
    meter = CpuMeter({"operator": op.pid, **control_plane_pids(ctx.kubeconfig)})
    meter.start()
    own0 = cpu_seconds(os.getpid(), tree=False)  # this process's watches (its children are the operator)
    t0 = op.started_at
    deadline = t0 + limit

    def all_seen() -> bool:
        if not op.alive():
            raise RuntimeError(f"operator exited:\n{op.tail()}")
        return len(inc_seen.first) >= n_inc and len(svc_seen.first) >= n_svc

    with contextlib.suppress(WaitTimeout):  # what was done in time is reported below
        wait_for(all_seen, max(0.0, deadline - time.monotonic()), "every object reconciled", interval=0.5, ignore=())
    done_inc = len(inc_seen.first)
    done_svc = len(svc_seen.first)
    all_done = done_inc == n_inc and done_svc == n_svc
    t_inc = max(inc_seen.first.values(), default=t0) - t0
    t_svc = max(svc_seen.first.values(), default=t0) - t0
    t_all = max(t_inc, t_svc) if all_done else float("inf")
    busy = time.monotonic() - t0
    split = meter.used()
    split["benchmark watches"] = cpu_seconds(os.getpid(), tree=False) - own0
    cpu_busy = cpu_seconds(op.pid)
    rss_busy = rss_bytes(op.pid)
    requests = api_requests(op)

    # At rest: first what is still due after handling (each incident's first evidence, the
    # first pages waiting for it), then a window in which nothing is: what the operator does
    # then is periodic work over what exists.
    settle_from = time.monotonic()
    with contextlib.suppress(WaitTimeout):
        wait_for(lambda: len(settled.settled) >= n_inc, 60.0 if ctx.quick else 180.0,
                 "every incident's first evidence recorded, no page pending", interval=0.5, ignore=())
    t_settled = time.monotonic() - settle_from
    n_settled = len(settled.settled)
    time.sleep(5)  # the last writes' own watch events come back to the operator
    window, slice_s = (40.0, 10.0) if ctx.quick else (90.0, 15.0)
    rest_meter = CpuMeter({"operator": op.pid, **control_plane_pids(ctx.kubeconfig)})
    rest_meter.start()
    r0, ev0, w0 = request_counts(op), settled.snapshot(), time.monotonic()
    slices: list[float] = []
    for _ in range(int(window / slice_s)):
        c0, s0 = cpu_seconds(op.pid), time.monotonic()
        time.sleep(slice_s)
        slices.append((cpu_seconds(op.pid) - c0) / (time.monotonic() - s0))
    rest_s = time.monotonic() - w0
    rest_split = rest_meter.used()
    r1, ev1 = request_counts(op), settled.snapshot()
    rest_requests = {k: v - r0.get(k, 0.0) for k, v in r1.items()}
    rest_writes = {k: v - ev0.get(k, 0) for k, v in ev1.items()}
    rest_cpu = rest_split["operator"] / rest_s
    rss, peak = rss_bytes(op.pid), peak_rss_bytes(op.pid)
    # Handled once is the target; how far the rest of the work got is worth showing too.
    # From the watch (a LIST of thousands of incidents with their evidence can outlast its timeout).
    with settled.lock:
        assigned = sum(1 for a, _ in settled.done.values() if a)
        notified = sum(1 for _, n in settled.done.values() if n)

    if not all_done:
        result.notes.append(f"not every object was handled {limit:.0f}s after the operator started; "
                            "'all handled' is then reported as infinite")
    result.figure("incidents handled", f"{done_inc:,}/{n_inc:,} in {t_inc:.1f}s")
    result.figure("services handled", f"{done_svc:,}/{n_svc:,} in {t_svc:.1f}s")
    result.figure("operator start → all handled (s)", t_all)
    result.figure("handled per second", (done_inc + done_svc) / max(t_inc, t_svc, 1e-9))
    result.figure("operator CPU seconds until all handled", cpu_busy)
    result.figure("CPU while handling (% of one core)", ", ".join(f"{k} {100 * v / busy:.0f}" for k, v in split.items()))
    result.figure("operator API requests until all handled", requests)
    result.figure("RSS when all handled (MB)", rss_busy / 1e6)
    result.figure("RSS at rest (MB)", rss / 1e6)
    result.figure("peak RSS (MB)", peak / 1e6)
    result.figure("after handling: until nothing due (s)",
                  t_settled if n_settled >= n_inc else float("nan"))
    result.figure("incidents with nothing due", f"{n_settled:,}/{n_inc:,}")
    result.figure("rest window (s)", rest_s)
    result.figure("CPU at rest (% of one core)", 100 * rest_cpu)
    result.figure(f"operator CPU at rest by {slice_s:.0f}-s slice (% of one core)",
                  ", ".join(f"{100 * x:.1f}" for x in slices))
    result.figure("CPU at rest, all (% of one core)", ", ".join(f"{k} {100 * v / rest_s:.1f}"
                                                               for k, v in rest_split.items()))
    result.figure("operator API requests at rest (per s)", sum(rest_requests.values()) / rest_s)
    result.figure("operator API requests at rest", show_counts(rest_requests))
    result.figure("object changes the watches saw at rest", show_counts({k: float(v) for k, v in rest_writes.items()}))
    result.figure("incidents assigned / with a delivered notification", f"{assigned:,} / {notified:,}")
    # Last, as it writes: what was measured above is printed even if it fails.
    floor, floor_requests = write_floor(ctx, incidents, services)
    result.figure(f"floor: the same writes by a plain script (1/{FLOOR_SHARE} of the objects, "
                  f"{floor_requests:,} requests, scaled) (s)", floor)
    result.figure("all handled / floor", t_all / floor if floor else float("inf"))
    result.check("operator start → all objects handled", t_all, "<=", 60, " s")
    result.check("all handled within 1.2x the floor", t_all / floor if floor else float("inf"), "<=", 1.2, "x")
    result.check("operator CPU at rest", 100 * rest_cpu, "<=", 2, " % of a core")
    result.check("RSS at rest", rss / 1e6, "<=", 400, " MB")
