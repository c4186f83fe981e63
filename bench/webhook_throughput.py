"""webhook_throughput: alerts per second through `paramedic-webhook` (gunicorn) into the API server.

Batches of 1, 10 and 100 alerts per request, 8 concurrent senders. Like
Alertmanager, which posts one notification per alert group at a time, each
sender owns its own services (8 each, 64 per phase), so concurrent requests
never target the same incident. Every alert is distinct and all start in the
same correlation window, so correlation implies exactly one Incident per
service: the check counts Incidents and the alert fingerprints recorded on
them (each exactly once). No operator runs: this is the receiver's figure.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from paramedic import kube
from paramedic.domain import alert_records as records

from .common import (
    Context,
    CpuMeter,
    Result,
    Webhook,
    am_alert,
    am_payload,
    control_plane_pids,
    create_all,
    deployment,
    log,
    percentile,
    utc_iso,
)

NAME = "webhook_throughput"
SENDERS = 8
SERVICES_PER_SENDER = 8
TOKEN = "bench-" + uuid.uuid4().hex
PHASE_SECONDS = 90.0


def service(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": "bench-target"},
        "alertSelector": {"matchLabels": {"service": name}}}}


def build_requests(ns: str, sender: int, requests: int, batch: int, starts_at: str) -> tuple[list[bytes], list[set[str]]]:
    """The bodies one sender posts, and the alert fingerprints of each."""
    bodies, fingerprints = [], []
    for j in range(requests):
        svc = f"svc-{sender + SENDERS * (j % SERVICES_PER_SENDER):02d}"
        alerts, fps = [], set()
        for m in range(batch):
            fp = uuid.uuid4().hex[:16]
            fps.add(fp)
            labels = {"alertname": "BenchLoad", "service": svc, "namespace": ns, "severity": "high",
                      "instance": f"10.0.{sender}.{j}:{m}"}
            alerts.append(am_alert(labels, starts_at, fp))
        bodies.append(json.dumps(am_payload(alerts, {"service": svc})).encode())
        fingerprints.append(fps)
    return bodies, fingerprints


def send_all(url: str, headers: dict[str, str], per_sender: list[list[bytes]], deadline: float) -> dict:
    """Each sender posts its bodies in order; 503s are retried after a short pause, as Alertmanager does."""
    lock = threading.Lock()
    out = {"latencies": [], "ok": 0, "retried": 0, "failed": 0, "unsent": 0, "acked": set()}

    def sender(k: int) -> None:
        bodies = per_sender[k]
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for i, body in enumerate(bodies):
                if time.monotonic() > deadline:
                    with lock:
                        out["unsent"] += len(bodies) - i
                    return
                for _attempt in range(20):
                    t0 = time.perf_counter()
                    r = http.post("/api/v1/alertmanager", content=body)
                    dt = time.perf_counter() - t0
                    with lock:
                        out["latencies"].append(dt)
                    if r.status_code == 200:
                        with lock:
                            out["ok"] += 1
                            out["acked"].add((k, i))
                        break
                    if r.status_code != 503:
                        with lock:
                            out["failed"] += 1
                        log(f"HTTP {r.status_code}: {r.text[:200]}")
                        break
                    with lock:
                        out["retried"] += 1
                    time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=len(per_sender)) as pool:
        list(pool.map(sender, range(len(per_sender))))
    return out


def recorded(client: kube.KubeClient, ns: str) -> tuple[int, dict[str, int], set[str]]:
    """(incidents, fingerprint → times recorded, services with more than one incident)."""
    incidents = client.list(kube.INCIDENTS, ns)
    seen: dict[str, int] = {}
    per_service: dict[str, int] = {}
    for inc in incidents:
        svc = inc["spec"]["service"]
        per_service[svc] = per_service.get(svc, 0) + 1
        for a in (inc.get("status") or {}).get("alerts") or []:
            fp = records.entry_fingerprint(a)
            seen[fp] = seen.get(fp, 0) + 1
    return len(incidents), seen, {s for s, c in per_service.items() if c > 1}


def run(ctx: Context, result: Result) -> None:
    plan = {1: 40, 10: 25, 100: 15} if not ctx.quick else {1: 10, 10: 8, 100: 4}  # requests per sender
    client = ctx.client
    namespaces = {b: ctx.namespace(f"bench-wh{b}") for b in plan}
    names = [f"svc-{i:02d}" for i in range(SENDERS * SERVICES_PER_SENDER)]
    for ns in namespaces.values():
        client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)
        create_all(client, kube.MONITORED_SERVICES, ns, [service(x) for x in names])
    hook = Webhook(ctx, next(iter(namespaces.values())), TOKEN)
    hook.start()
    hook.wait_ready()
    # Warm-up: connection pools, imports, the watch cache of this namespace's services.
    warm_ns = ctx.namespace("bench-wh-warm")
    create_all(client, kube.MONITORED_SERVICES, warm_ns, [service(x) for x in names])
    warm, _ = build_requests(warm_ns, 0, 8, 10, utc_iso())
    send_all(hook.url, hook.headers(), [warm], time.monotonic() + 30)

    for batch, requests in plan.items():
        ns = namespaces[batch]
        starts_at = utc_iso()
        per_sender, fingerprints = [], []
        for k in range(SENDERS):
            bodies, fps = build_requests(ns, k, requests, batch, starts_at)
            per_sender.append(bodies)
            fingerprints.append(fps)
        # All alerts must fall in one correlation window (5 min): start the phase right away.
        meter = CpuMeter({"webhook": hook.pid, **control_plane_pids(ctx.kubeconfig)})
        meter.start()
        t0 = time.monotonic()
        out = send_all(hook.url, hook.headers(), per_sender, t0 + PHASE_SECONDS)
        elapsed = time.monotonic() - t0
        used = meter.used()
        cpu = used["webhook"]
        alerts_ok = out["ok"] * batch
        sent_requests = requests * SENDERS - out["unsent"]
        services_used = {f"svc-{k + SENDERS * (j % SERVICES_PER_SENDER):02d}" for k in range(SENDERS)
                for j in range(min(requests, SERVICES_PER_SENDER))}
        n_inc, seen, _ = recorded(client, ns)
        # Acknowledged (200) alerts must all be recorded; others may or may not be.
        expected = set().union(*(fingerprints[k][i] for k, i in out["acked"])) if out["acked"] else set()
        lost = sum(1 for fp in expected if fp not in seen)
        dupes = sum(c - 1 for c in seen.values() if c > 1) + max(0, n_inc - len(services_used))
        lat = out["latencies"]
        tag = f"batch {batch}"
        result.figure(f"{tag}: alerts/s", alerts_ok / elapsed)
        result.figure(f"{tag}: requests/s", out["ok"] / elapsed)
        result.figure(f"{tag}: request p50 (ms)", percentile(lat, 50) * 1000)
        result.figure(f"{tag}: request p99 (ms)", percentile(lat, 99) * 1000)
        result.figure(f"{tag}: alerts sent / requests", f"{alerts_ok:,} / {sent_requests:,} in {elapsed:.1f}s")
        result.figure(f"{tag}: 503 retried / failed / unsent", f"{out['retried']} / {out['failed']} / {out['unsent']}")
        result.figure(f"{tag}: CPU (% of one core)", ", ".join(f"{k} {100 * v / elapsed:.0f}" for k, v in used.items()))
        result.figure(f"{tag}: alerts per webhook CPU-second", alerts_ok / cpu if cpu else float("nan"))
        result.figure(f"{tag}: incidents (expected)", f"{n_inc} ({len(services_used)})")
        result.figure(f"{tag}: alerts lost / duplicated", f"{lost} / {dupes}")
        if batch == 100:
            result.check("alerts/s with batches of 100", alerts_ok / elapsed, ">=", 1000, " alerts/s")
        result.check(f"{tag}: duplicates (extra incidents or alerts recorded twice)", dupes, "==", 0)
        result.check(f"{tag}: incidents as correlation implies", n_inc, "==", len(services_used))
        result.check(f"{tag}: acknowledged alerts lost", lost, "==", 0)
