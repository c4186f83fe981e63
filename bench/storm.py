"""storm: 20,000 distinct alerts, with re-sends and resolutions mixed in, as fast as the receiver takes them.

100 services × 200 alerts, posted in Alertmanager-sized groups of 50 by 8
concurrent senders (each owning its services, as Alertmanager serialises one
group's notifications). Mixed in, per service: one firing group re-sent; for
one service in ten every alert resolved (the incident must auto-resolve), then
a resolved group and a firing group re-sent (as an HA peer would); for the
others the first 20 alerts resolved. The operator runs meanwhile, writing the
same Incidents' status, as in production. 503 answers are retried like
Alertmanager does.

Checks: every distinct alert recorded on exactly one Incident (status.alerts,
by fingerprint), resolutions recorded, exactly one Incident per service, the
fully resolved ones resolved. Time to drain: first request to last 200.
"""

from __future__ import annotations

import json
import random
import time
import uuid

from paramedic import kube
from paramedic.domain import alert_records as records

from .common import (
    Context,
    CpuMeter,
    Result,
    am_alert,
    am_payload,
    control_plane_pids,
    create_all,
    deployment,
    operator_and_webhook,
    percentile,
    utc_iso,
)
from .webhook_throughput import SENDERS, send_all, service

NAME = "storm"
TOKEN = "bench-" + uuid.uuid4().hex
GROUP = 50


def run(ctx: Context, result: Result) -> None:
    n_services, per_service = (20, 100) if ctx.quick else (100, 200)
    client = ctx.client
    ns = ctx.namespace("bench-storm")
    names = [f"svc-{i:03d}" for i in range(n_services)]
    client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)
    create_all(client, kube.MONITORED_SERVICES, ns, [service(x) for x in names])
    rng = random.Random(7)
    starts_at = utc_iso()

    # Every alert of every service, and each service's steps in order.
    firing: dict[str, list[dict]] = {}
    steps: dict[str, list[list[dict]]] = {}
    full: set[str] = set()
    resolved_fps: set[str] = set()
    for idx, svc in enumerate(names):
        alerts = []
        for m in range(per_service):
            labels = {"alertname": "StormAlert", "service": svc, "namespace": ns, "severity": "high",
                      "instance": f"10.1.{idx}.{m}"}
            alerts.append(am_alert(labels, starts_at, uuid.uuid4().hex[:16]))
        firing[svc] = alerts
        groups = [alerts[i:i + GROUP] for i in range(0, per_service, GROUP)]
        plan = list(groups) + [rng.choice(groups)]
        if idx % 10 == 0:
            full.add(svc)
            res = [dict(a, status="resolved", endsAt=utc_iso()) for a in alerts]
            res_groups = [res[i:i + GROUP] for i in range(0, per_service, GROUP)]
            plan += res_groups + [rng.choice(res_groups), rng.choice(groups)]
            resolved_fps |= {a["fingerprint"] for a in alerts}
        else:
            res = [dict(a, status="resolved", endsAt=utc_iso()) for a in alerts[:20]]
            plan.append(res)
            resolved_fps |= {a["fingerprint"] for a in alerts[:20]}
        steps[svc] = plan

    # Each sender interleaves the steps of its own services, keeping each service's order.
    per_sender: list[list[bytes]] = []
    total_alerts = 0
    for k in range(SENDERS):
        mine = [steps[s] for i, s in enumerate(names) if i % SENDERS == k]
        bodies = []
        for r in range(max(len(p) for p in mine)):
            for p in mine:
                if r < len(p):
                    bodies.append(json.dumps(am_payload(p[r], {"service": p[r][0]["labels"]["service"]})).encode())
                    total_alerts += len(p[r])
        per_sender.append(bodies)
    requests = sum(len(b) for b in per_sender)

    op, hook = operator_and_webhook(ctx, ns, TOKEN)

    meter = CpuMeter({"webhook": hook.pid, "operator": op.pid, **control_plane_pids(ctx.kubeconfig)})
    meter.start()
    t0 = time.monotonic()
    out = send_all(hook.url, hook.headers(), per_sender, t0 + 600)
    drain = time.monotonic() - t0
    used = meter.used()

    incidents = client.list(kube.INCIDENTS, ns)
    recorded: dict[str, list[str]] = {}
    per_svc: dict[str, list[dict]] = {}
    for inc in incidents:
        per_svc.setdefault(inc["spec"]["service"], []).append(inc)
        for a in (inc.get("status") or {}).get("alerts") or []:
            recorded.setdefault(records.entry_fingerprint(a), []).append(a.get("status", ""))
    distinct = {a["fingerprint"] for alerts in firing.values() for a in alerts}
    lost = sum(1 for fp in distinct if fp not in recorded)
    dupes = sum(len(v) - 1 for v in recorded.values() if len(v) > 1)
    unresolved = sum(1 for fp in resolved_fps if "resolved" not in recorded.get(fp, []))
    extra = sum(len(v) - 1 for v in per_svc.values() if len(v) > 1)
    not_resolved = [s for s in full if not any(i["spec"]["state"] in ("resolved", "closed") for i in per_svc.get(s, []))]
    lat = out["latencies"]

    result.figure("distinct alerts", len(distinct))
    result.figure("alerts posted (with re-sends and resolutions)", total_alerts)
    result.figure("requests", requests)
    result.figure("time to drain (s)", drain)
    result.figure("alerts/s (posted)", total_alerts / drain)
    result.figure("request p50 (ms)", percentile(lat, 50) * 1000)
    result.figure("request p99 (ms)", percentile(lat, 99) * 1000)
    result.figure("CPU while draining (% of one core)", ", ".join(f"{k} {100 * v / drain:.0f}" for k, v in used.items()))
    result.figure("503 answers retried / failed / unsent", f"{out['retried']} / {out['failed']} / {out['unsent']}")
    result.figure("incidents (expected)", f"{len(incidents)} ({n_services})")
    result.figure("alerts lost", lost)
    result.figure("alerts recorded twice", dupes)
    result.figure("resolutions not recorded", unresolved)
    result.figure("fully resolved services whose incident is not resolved", len(not_resolved))
    result.check("alerts lost", lost, "==", 0)
    result.check("duplicates (alerts recorded twice + extra incidents)", dupes + extra, "==", 0)
    result.check("resolutions not recorded", unresolved, "==", 0)
    result.check("incidents auto-resolved when all alerts resolved (missing)", len(not_resolved), "==", 0)
