"""Kopf wiring. Handlers are thin: they keep the caches current and queue keys;
the reconcilers do the work."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Hashable
from typing import Any

import kopf

from paramedic import kube, metrics
from paramedic.domain import lifecycle
from paramedic.domain.vocabulary import DEFAULT_SEVERITY, SEVERITIES, State
from paramedic.settings import Settings

from . import login as _login
from .incidents import IncidentReconciler
from .runtime import Runtime
from .schedules import ScheduleReconciler
from .services import ServiceReconciler
from .workqueue import WorkQueue

log = logging.getLogger("paramedic.operator")

G, V = kube.GROUP, kube.VERSION
_rt: Runtime | None = None
_tasks: list[asyncio.Task] = []


def runtime() -> Runtime:
    assert _rt is not None, "operator not started"
    return _rt


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # A kubeconfig when there is one, else the pod's service account at
    # KUBERNETES_SERVICE_HOST:PORT (no cluster DNS needed): as Paramedic's own client.
    return _login.login(**kwargs)


class _NoDiffBase(kopf.DiffBaseStorage):
    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: object) -> None:
    global _rt
    # Without these, a watch can hang forever on a half-dead connection.
    settings.watching.server_timeout = 240
    settings.watching.client_timeout = 270
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    # Handler logs stay in the log, not as Kubernetes Events on every object.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 30
    # Only on.event handlers here, so Kopf's change detection is unused; its per-event deep
    # copy of the body was a tenth of the operator's CPU when thousands of objects arrive.
    settings.persistence.diffbase_storage = _NoDiffBase()

    conf = Settings.from_env()
    rt = Runtime(conf, kube.AsyncKubeClient.from_settings(conf))
    rt.service_reconciler = ServiceReconciler(rt)
    rt.incident_reconciler = IncidentReconciler(rt)
    rt.schedule_reconciler = ScheduleReconciler(rt)
    workers = conf.workers
    # Service reconciles are two small API calls each; after a start thousands wait at once.
    rt.service_queue = WorkQueue("services", rt.service_reconciler.reconcile, concurrency=max(2, workers // 2))
    rt.incident_reconciler.queue = WorkQueue("incidents", rt.incident_reconciler.reconcile, concurrency=workers)
    rt.schedule_queue = WorkQueue("schedules", rt.schedule_reconciler.reconcile, concurrency=2)
    def wake(owner: Hashable) -> None:
        if owner:
            rt.incident_reconciler.queue.add(owner)

    rt.effects.done_callback = wake
    for q in (rt.service_queue, rt.incident_reconciler.queue, rt.schedule_queue):
        q.start()
    rt.service_reconciler.prober.start()
    metrics.serve(conf.metrics_port)
    _tasks.append(asyncio.create_task(_open_gauge(rt), name="open-incidents-gauge"))
    _rt = rt
    log.info("paramedic operator started: %s", {k: v for k, v in conf.redacted().items()
                                                 if k in ("namespace", "watch_namespaces", "remediation_enabled")})


@kopf.on.cleanup()
async def cleanup(**_: object) -> None:
    rt = _rt
    if rt is None:
        return
    for t in _tasks:
        t.cancel()
    await rt.service_reconciler.prober.stop()
    for q in (rt.service_queue, rt.incident_reconciler.queue, rt.schedule_queue):
        await q.stop()
    await rt.effects.stop()
    await rt.incident_reconciler.notifier.aclose()
    await rt.client.aclose()


@kopf.on.event(G, V, "monitoredservices")
async def service_event(event: Any, **_: Any) -> None:  # event: kopf.RawEvent, its object used as a dict
    rt = runtime()
    body = event["object"]
    old = rt.services.get((body["metadata"].get("namespace", ""), body["metadata"]["name"]))
    key = rt.services.drop(body) if event.get("type") == "DELETED" else rt.services.put(body)
    if old is not None and _intent(old) == _intent(body) and event.get("type") != "DELETED":
        return  # only our own status moved: nothing to reconcile
    rt.service_queue.add(key)
    # Incidents of this service may be waiting on its policy.
    for inc in rt.incidents.indexed(key):
        if lifecycle.is_active(inc["spec"].get("state", State.OPEN)):
            rt.incident_reconciler.queue.add((key[0], inc["metadata"]["name"]))


def _intent(body: dict) -> tuple:
    """What people control on a MonitoredService: its spec (generation) and annotations."""
    meta = body.get("metadata", {})
    return meta.get("generation"), tuple(sorted((meta.get("annotations") or {}).items()))


@kopf.on.event(G, V, "incidents")
async def incident_event(event: Any, **_: Any) -> None:
    rt = runtime()
    body = event["object"]
    key = rt.incidents.drop(body) if event.get("type") == "DELETED" else rt.incidents.put(body)
    rt.incident_reconciler.queue.add(key)


@kopf.on.event(G, V, "oncallschedules")
async def schedule_event(event: Any, **_: Any) -> None:
    rt = runtime()
    body = event["object"]
    key = rt.schedules.drop(body) if event.get("type") == "DELETED" else rt.schedules.put(body)
    rt.schedule_queue.add(key)


async def _open_gauge(rt: Runtime) -> None:
    """paramedic_incidents_open from the cache, recomputed every few seconds (cheap, no API calls)."""
    while True:
        counts = Counter(i["spec"].get("severity", DEFAULT_SEVERITY) for i in rt.incidents.values()
                         if lifecycle.is_active(i["spec"].get("state", State.OPEN)))
        for sev in SEVERITIES:
            metrics.INCIDENTS_OPEN.labels(sev).set(counts.get(sev, 0))
        await asyncio.sleep(5)
