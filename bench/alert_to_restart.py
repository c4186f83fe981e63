"""alert_to_restart: Alertmanager POST → webhook → Incident → operator → Deployment restartedAt written.

N services (MonitoredService with remediation [restart], cooldown 0, each with its
own Deployment). Alerts are sent one at a time (closed loop: the next alert goes
out once the previous restart was seen), each for a different service, so the
figure is the latency of one incident, not of a queue. The end is when a watch
on Deployments first shows the template's restartedAt annotation.

The floor, interleaved with the real path so both see the same background load:
the same API writes done directly by this script (create the Incident, patch the
Deployment) against Deployments in a namespace no operator watches.
"""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from paramedic import kube
from paramedic.domain.alert_naming import incident_name
from paramedic.domain.timeutil import utcnow
from paramedic.ingest import build_incident

from .common import (
    RESTARTED_AT,
    Context,
    CpuMeter,
    Result,
    Watcher,
    am_alert,
    am_payload,
    control_plane_pids,
    create_all,
    deployment,
    log,
    operator_and_webhook,
    percentile,
    utc_iso,
    wait_for,
)
from .operator_scale import request_counts, show_counts

NAME = "alert_to_restart"
TOKEN = "bench-" + uuid.uuid4().hex


class RestartSeen:
    """First time a watch shows each Deployment's restartedAt annotation."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()

    def on_event(self, type_: str, obj: dict, now: float) -> None:
        if type_ == "DELETED":
            return
        ann = ((obj.get("spec") or {}).get("template", {}).get("metadata") or {}).get("annotations") or {}
        if RESTARTED_AT in ann:
            name = obj["metadata"]["name"]
            with self.cond:
                if name not in self.seen:
                    self.seen[name] = now
                    self.cond.notify_all()

    def wait(self, name: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while name not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[name]


class Stages:
    """When each service's incident was first seen created, holding its alert, and with a remediation attempt."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = {}

    def on_event(self, type_: str, obj: dict, now: float) -> None:
        if type_ == "DELETED":
            return
        svc = (obj.get("spec") or {}).get("service", "")
        st = obj.get("status") or {}
        t = self.times.setdefault(svc, {})
        t.setdefault("created", now)
        if st.get("alerts"):
            t.setdefault("alerts", now)
        if ((st.get("remediation") or {}).get("attempts")):
            t.setdefault("attempt", now)
        if "opened" in [e.get("type") for e in st.get("timeline") or []]:
            t.setdefault("opened", now)


def service(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": name},
        "alertSelector": {"matchLabels": {"service": name}},
        "remediation": {"actions": [{"restart": {}}], "cooldownSeconds": 0, "maxAttempts": 1, "maxPerHour": 60}}}


def run(ctx: Context, result: Result) -> None:
    n = 30 if ctx.quick else 200
    client = ctx.client
    ns = ctx.namespace("bench-a2r")
    floor_ns = ctx.namespace("bench-a2r-floor")
    names = [f"svc-{i:03d}" for i in range(n)]
    # No pods: the interval ends at the template write, before any rollout, and 400 fake pods
    # starting (kwok, scheduler, controllers) would cost a minute and disturb the first samples.
    took = create_all(client, kube.DEPLOYMENTS, ns, [deployment(x, replicas=0) for x in names + ["warm-up"]])
    took += create_all(client, kube.DEPLOYMENTS, floor_ns, [deployment(x, replicas=0) for x in names])
    took += create_all(client, kube.MONITORED_SERVICES, ns, [service(x) for x in names + ["warm-up"]])
    log(f"created {2 * n + 1} Deployments and {n + 1} MonitoredServices in {took:.1f}s")

    def available() -> bool:
        deps = client.list(kube.DEPLOYMENTS, ns) + client.list(kube.DEPLOYMENTS, floor_ns)
        return all((d.get("status") or {}).get("availableReplicas", 0) == d["spec"]["replicas"] for d in deps)
    ready_from = time.monotonic()
    try:
        wait_for(available, 240, "all Deployments available", interval=2)
        log(f"Deployments available after {time.monotonic() - ready_from:.0f}s")
    except TimeoutError as exc:
        result.notes.append(f"not every Deployment became available before the run: {exc}")

    seen, floor_seen, stages = RestartSeen(), RestartSeen(), Stages()
    watches = [Watcher(ctx.conn, kube.DEPLOYMENTS, ns, seen.on_event).start(),
               Watcher(ctx.conn, kube.DEPLOYMENTS, floor_ns, floor_seen.on_event).start(),
               Watcher(ctx.conn, kube.INCIDENTS, ns, stages.on_event).start()]
    ctx.on_close(lambda: [w.stop() for w in watches])
    for w in watches:
        w.synced.wait(30)

    op, hook = operator_and_webhook(ctx, ns, TOKEN)

    http = httpx.Client(base_url=hook.url, headers=hook.headers(), timeout=30)
    ctx.on_close(http.close)

    def fire(name: str) -> tuple[float, float, int]:
        labels = {"alertname": "BenchDown", "service": name, "namespace": ns, "severity": "high"}
        body = am_payload([am_alert(labels, utc_iso(), uuid.uuid4().hex[:16])], {"service": name})
        t0 = time.monotonic()
        r = http.post("/api/v1/alertmanager", json=body)
        return t0, time.monotonic(), r.status_code

    t0, _, code = fire("warm-up")
    if code != 200 or seen.wait("warm-up", 60) is None:
        raise RuntimeError(f"warm-up alert did not lead to a restart (HTTP {code}):\n{op.tail()}")

    sent: dict[str, float] = {}
    latencies: list[float] = []
    webhook_times: list[float] = []
    floors: list[float] = []
    missing: list[str] = []
    errors = 0
    meter = CpuMeter({"webhook": hook.pid, "operator": op.pid, **control_plane_pids(ctx.kubeconfig)})
    meter.start()
    requests0 = request_counts(op)
    started = time.monotonic()
    for name in names:
        # The real path.
        t0, t_answer, code = fire(name)
        sent[name] = t0
        webhook_times.append(t_answer - t0)
        if code != 200:
            errors += 1
        when = seen.wait(name, 30)
        if when is None:
            missing.append(name)
        else:
            latencies.append(when - t0)
        # The floor: the same two writes, straight from here.
        now = utcnow()
        body = build_incident(floor_ns, incident_name(name, "high", now, 300), service=name, severity="high",
                              title=f"BenchDown on {name}", source="alertmanager", now=now)
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: utc_iso()}}}}}
        f0 = time.monotonic()
        client.create(kube.INCIDENTS, {k: v for k, v in body.items() if k != "status"}, floor_ns)
        client.patch(kube.DEPLOYMENTS, name, patch, floor_ns, content_type=kube.STRATEGIC)
        when = floor_seen.wait(name, 30)
        if when is not None:
            floors.append(when - f0)
    elapsed = time.monotonic() - started
    used = meter.used()
    requests = {k: v - requests0.get(k, 0.0) for k, v in request_counts(op).items()}

    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    f50, f99 = percentile(floors, 50), percentile(floors, 99)
    result.figure("incidents", n)
    result.figure("restarts seen", len(latencies))
    result.figure("webhook non-200 answers", errors)
    result.figure("alert→restartedAt p50 (ms)", p50 * 1000)
    result.figure("alert→restartedAt p99 (ms)", p99 * 1000)
    result.figure("alert→restartedAt max (ms)", max(latencies, default=float("nan")) * 1000)
    result.figure("webhook answer p50 (ms)", percentile(webhook_times, 50) * 1000)
    result.figure("webhook answer p99 (ms)", percentile(webhook_times, 99) * 1000)
    result.figure("floor (create Incident + patch Deployment) p50 (ms)", f50 * 1000)
    result.figure("floor p99 (ms)", f99 * 1000)
    result.figure("p50 / floor p50", p50 / f50 if f50 else float("nan"))
    result.figure("run time (s)", elapsed)
    result.figure("operator API requests per incident", show_counts({k: v / n for k, v in requests.items()}))
    result.figure("CPU during the run (% of one core)", ", ".join(f"{k} {100 * v / elapsed:.0f}" for k, v in used.items()))
    # Where the time goes: when the incident appeared, got its alert, got its remediation attempt.
    for stage, what in (("created", "Incident created"), ("alerts", "alert recorded in status"),
                        ("attempt", "remediation attempt recorded")):
        values = [stages.times[x][stage] - sent[x] for x in names if stage in stages.times.get(x, {})]
        result.figure(f"stage p50 (ms): {what}", percentile(values, 50) * 1000)
    opened = sum(1 for x in names if "opened" in stages.times.get(x, {}))
    result.figure("incidents the operator opened (timeline 'opened': assignment, SLA, mail)", f"{opened}/{n}")
    if missing:
        result.notes.append(f"{len(missing)} restarts not seen within 30 s: {', '.join(missing[:5])}...")
    result.check("p50", p50 * 1000, "<=", 250, " ms")
    result.check("p99", p99 * 1000 if not missing else float("inf"), "<=", 1000, " ms")
    result.check("p50 within 3x the floor", p50 / f50 if f50 else float("nan"), "<=", 3, "x")

    # What the operator made of one incident (is it opened, assigned, SLA-clocked?).
    inc = client.list(kube.INCIDENTS, ns)
    sample = next((i for i in inc if i["spec"]["service"] == names[0]), None)
    if sample is not None:
        st = sample.get("status") or {}
        types = [e.get("type") for e in st.get("timeline") or []]
        result.notes.append(f"sample incident {sample['metadata']['name']}: timeline {types}, "
                            f"sla={'sla' in st}, observedGeneration={st.get('observedGeneration')}")
