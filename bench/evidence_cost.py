"""evidence_cost: 500 incidents opened at once after an outage, each gathering evidence about its target.

100 Deployments (1 kwok pod each, quick: 20), each with a Warning Event (FailedScheduling)
about its pod, and 500 MonitoredServices (5 per Deployment, remediation off) with one open
Incident each, all created before one operator starts (PARAMEDIC_EVIDENCE_REFRESH_SECONDS
3600, so each incident gathers once). A watch from this process notes when each Incident
first has `status.evidence` and `status.hints` (the FailedScheduling event gives each an
`unschedulable` hint). Figures: API requests per incident by resource (the operator's own
`paramedic_kube_api_requests_total`, less what it spends without evidence: a GET of each
service's target), and the time from the operator's start to the first hint, p50/p99/max.
The operator mails through a loopback SMTP server: the time to each "opened" page, which
waits for the first evidence at most PARAMEDIC_NOTIFY_EVIDENCE_WAIT_SECONDS (10 s), and how
many pages name the probable cause. The pages' floor: the same storm again, in a fresh
namespace with a fresh operator, its pages sent without waiting (the setting at 0).

The floor: the same reads per incident (GET the Deployment, LIST its ReplicaSets, LIST its
pods, LIST the namespace's Warning Events, GET its node) made by a plain script with as many
threads as PARAMEDIC_EVIDENCE_CONCURRENCY (8).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from devtools.mail import MailSink
from devtools.wait import WaitTimeout
from paramedic import kube
from paramedic.domain.timeutil import micro_iso, utcnow_iso

from .common import Context, Operator, Result, Watcher, create_all, deployment, log, percentile, wait_for
from .operator_scale import api_requests

NAME = "evidence_cost"
PER_TARGET = 5
CONCURRENCY = 8
EVIDENCE_RESOURCES = ("deployments", "replicasets", "pods", "events", "nodes")


class FirstSeen:
    def __init__(self, test) -> None:
        self.test, self.first, self.lock = test, {}, threading.Lock()

    def on_event(self, type_: str, obj: dict, now: float) -> None:
        if type_ != "DELETED" and self.test(obj):
            with self.lock:
                self.first.setdefault(obj["metadata"]["name"], now)


def requests_by_resource(op: Operator) -> dict[str, float]:
    counts: dict[str, float] = {}
    for sample, labels, value in op.metrics().get("paramedic_kube_api_requests", []):
        if sample.endswith("_total"):
            key = f"{labels.get('method')} {labels.get('resource')}"
            counts[key] = counts.get(key, 0) + value
    return counts


def floor(client: kube.KubeClient, ns: str, targets: list[str], n_incidents: int) -> tuple[float, int]:
    """The same reads by a plain script: (seconds for all incidents, requests sent)."""
    sent = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        name = targets[i % len(targets)]
        client.get(kube.DEPLOYMENTS, name, ns)
        client.list(kube.REPLICASETS, ns, labels={"app": name})
        pods = client.list(kube.PODS, ns, labels={"app": name})
        client.list(kube.EVENTS, ns, field_selector="type=Warning")
        nodes = {p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")}
        for node in nodes:
            client.get(kube.NODES, node)
        with lock:
            sent[0] += 4 + len(nodes)

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(n_incidents)))
    return time.monotonic() - started, sent[0]


@dataclass
class Round:
    """One storm: its namespace and targets, the operator, and when each thing was first seen."""

    ns: str
    targets: list[str]
    op: Operator
    evidence: FirstSeen
    hinted: FirstSeen
    pages: list[tuple[float, bool]]
    """(arrival, names the probable cause) of each "opened" mail."""

    def since_start(self, times: Iterable[float]) -> list[float]:
        return sorted(t - self.op.started_at for t in times)


def storm(ctx: Context, prefix: str, n_targets: int, env: dict[str, str]) -> Round:
    """The Deployments, their Warning Events, services and open incidents, then one operator: until
    every incident has a hint and a page."""
    n_inc = n_targets * PER_TARGET
    client = ctx.client
    ns = ctx.namespace(prefix)
    targets = [f"app-{i:03d}" for i in range(n_targets)]
    create_all(client, kube.DEPLOYMENTS, ns, [deployment(t) for t in targets])

    def pods_running() -> bool:
        pods = client.list(kube.PODS, ns)
        return len([p for p in pods if (p.get("status") or {}).get("phase") == "Running"]) >= n_targets

    wait_for(pods_running, 180, "the target pods all running", interval=1, ignore=())
    pods = {p["metadata"]["labels"]["app"]: p["metadata"]["name"] for p in client.list(kube.PODS, ns)}
    events = [{"metadata": {"name": f"{t}-unschedulable"}, "type": "Warning", "reason": "FailedScheduling",
               "note": "0/2 nodes are available: 2 Insufficient memory.",
               "regarding": {"apiVersion": "v1", "kind": "Pod", "name": pods[t], "namespace": ns},
               "eventTime": micro_iso(utcnow_iso()), "reportingController": "bench.paramedic.dev/evidence",
               "reportingInstance": "bench", "action": "Scheduling"} for t in targets]
    create_all(client, kube.EVENTS, ns, events)
    services = [{"metadata": {"name": f"svc-{i:04d}"}, "spec": {
        "target": {"kind": "Deployment", "name": targets[i % n_targets]}, "remediation": {"enabled": False}}}
        for i in range(n_inc)]
    incidents = [{"metadata": {"name": f"svc-{i:04d}-down"}, "spec": {
        "service": f"svc-{i:04d}", "severity": "high", "title": "down after the outage"}} for i in range(n_inc)]
    create_all(client, kube.MONITORED_SERVICES, ns, services, threads=48)
    create_all(client, kube.INCIDENTS, ns, incidents, threads=48)
    log(f"created {n_targets} Deployments, {n_inc} MonitoredServices and {n_inc} Incidents in {ns}")

    evidence = FirstSeen(lambda o: bool(((o.get("status") or {}).get("evidence") or {}).get("gatheredAt")))
    hinted = FirstSeen(lambda o: bool((o.get("status") or {}).get("hints")))

    def both(type_: str, obj: dict, now: float) -> None:
        evidence.on_event(type_, obj, now)
        hinted.on_event(type_, obj, now)

    watch = Watcher(ctx.conn, kube.INCIDENTS, ns, both).start()
    ctx.on_close(watch.stop)
    watch.synced.wait(60)
    pages: list[tuple[float, bool]] = []
    mail = MailSink()
    mail.on_message = lambda m: pages.append((time.monotonic(), "cannot be scheduled" in m["text"]))
    mail.start()
    ctx.on_close(mail.stop)
    op = Operator(ctx, [ns], cpus=None, env={
        "PARAMEDIC_EVIDENCE_REFRESH_SECONDS": "3600", "PARAMEDIC_EVIDENCE_CONCURRENCY": str(CONCURRENCY),
        "PARAMEDIC_SMTP_HOST": "127.0.0.1", "PARAMEDIC_SMTP_PORT": str(mail.port),
        "PARAMEDIC_ADMIN_EMAILS": "oncall@example.com", **env})
    op.start()
    deadline = op.started_at + (120 if ctx.quick else 300)

    def all_hinted_and_paged() -> bool:
        if not op.alive():
            raise RuntimeError(f"operator exited:\n{op.tail()}")
        return len(hinted.first) >= n_inc and len(pages) >= n_inc

    with contextlib.suppress(WaitTimeout):  # refused just below, with the counts
        wait_for(all_hinted_and_paged, max(0.0, deadline - time.monotonic()), "every incident hinted and paged",
                 interval=0.5, ignore=())
    if len(hinted.first) < n_inc or len(pages) < n_inc:
        raise RuntimeError(f"only {len(hinted.first)} of {n_inc} incidents got a hint and {len(pages)} a page in time")
    return Round(ns, targets, op, evidence, hinted, pages)


def page_figures(result: Result, label: str, r: Round) -> None:
    to_page = r.since_start(t for t, _ in r.pages)
    result.figure(f"{label} p50 (s)", round(percentile(to_page, 50), 2))
    result.figure(f"{label} p99 (s)", round(percentile(to_page, 99), 2))
    result.figure(f"{label} max (s)", round(to_page[-1], 2))
    result.figure(f"{label}: pages naming the probable cause", f"{sum(1 for _, named in r.pages if named)}/{len(r.pages)}")


def run(ctx: Context, result: Result) -> None:
    n_targets = 20 if ctx.quick else 100
    n_inc = n_targets * PER_TARGET
    r = storm(ctx, "bench-evidence", n_targets, {})
    time.sleep(3)  # let counters settle (no more gatherings are due: refresh is an hour)
    counts = requests_by_resource(r.op)
    # Reads only: the operator also POSTs Events (IncidentOpened), which are not evidence.
    spent = {k: v for k, v in counts.items() if k.startswith("GET ") and k.split(" ")[1] in EVIDENCE_RESOURCES}
    # Without evidence the operator still GETs each service's target once (its Ready condition).
    spent["GET deployments"] = spent.get("GET deployments", 0) - n_inc
    total = sum(spent.values())
    to_hint = r.since_start(r.hinted.first.values())
    to_evidence = r.since_start(r.evidence.first.values())
    result.figure("incidents", n_inc)
    result.figure("evidence requests per incident", round(total / n_inc, 2))
    result.figure("evidence requests by kind", ", ".join(f"{k} {v:,.0f}" for k, v in sorted(spent.items())))
    result.figure("operator requests, all", api_requests(r.op))
    result.figure("time to first hint p50 (s)", round(percentile(to_hint, 50), 2))
    result.figure("time to first hint p99 (s)", round(percentile(to_hint, 99), 2))
    result.figure("time to first hint max (s)", round(to_hint[-1], 2))
    result.figure("time to all evidence (s)", round(to_evidence[-1], 2))
    page_figures(result, "time to page", r)
    took, sent = floor(ctx.client, r.ns, r.targets, n_inc)
    result.figure("floor: requests per incident", round(sent / n_inc, 2))
    result.figure("floor: same reads for all incidents (s)", round(took, 2))
    result.check("evidence requests per incident", total / n_inc, "<=", 6)
    # The pages' floor: the same storm in a fresh namespace, the pages sent without waiting.
    r.op.stop()
    page_figures(result, "floor: time to page without waiting", storm(
        ctx, "bench-evidence-nowait", n_targets, {"PARAMEDIC_NOTIFY_EVIDENCE_WAIT_SECONDS": "0"}))
