"""Kopf handlers. They are thin: they keep the caches current and queue keys; the
reconcilers do the work. The operator's parts reach them as Kopf's memo
(`wiring.Memo`, given to `kopf.run` by main), built by the startup handler."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from paramedic import kube, metrics
from paramedic.domain.resources import Incident, Service
from paramedic.informer import key_of
from paramedic.settings import Settings

from . import login as _login
from .wiring import Memo, Operator

log = logging.getLogger("paramedic.operator")

G, V = kube.GROUP, kube.VERSION


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
async def startup(settings: kopf.OperatorSettings, memo: Memo, **_: object) -> None:
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
    op = Operator(conf, kube.AsyncKubeClient.from_settings(conf), identity=memo.identity, standalone=memo.standalone)
    op.start()
    metrics.serve(conf.metrics_port)
    memo.operator = op
    log.info("paramedic operator started: %s", {k: v for k, v in conf.redacted().items()
                                                 if k in ("namespace", "watch_namespaces", "remediation_enabled", "shards")}
             | {"identity": memo.identity, "leases": not memo.standalone})


@kopf.on.cleanup()
async def cleanup(memo: Memo, **_: object) -> None:
    if memo.operator is not None:
        await memo.operator.stop()


@kopf.on.event(G, V, "monitoredservices")
async def service_event(event: Any, memo: Memo, **_: Any) -> None:  # event: kopf.RawEvent, its object used as a dict
    op = memo.require()
    rt = op.runtime
    body = event["object"]
    old = rt.services.get(key_of(body))
    key = rt.services.drop(body) if event.get("type") == "DELETED" else rt.services.put(body)
    if old is not None and _intent(old) == _intent(body) and event.get("type") != "DELETED":
        return  # only our own status moved: nothing to reconcile
    op.service_queue.add(key)
    # Incidents of this service may be waiting on its policy.
    for inc in rt.incidents.indexed(key):
        incident = Incident(inc)
        if incident.active:
            op.incident_queue.add((key[0], incident.name))


def _intent(body: dict) -> tuple:
    """What people control on a MonitoredService: its spec (generation) and annotations."""
    service = Service(body)
    return service.meta.get("generation"), tuple(sorted(service.annotations.items()))


@kopf.on.event(G, V, "incidents")
async def incident_event(event: Any, memo: Memo, **_: Any) -> None:
    op = memo.require()
    body = event["object"]
    incidents = op.runtime.incidents
    key = incidents.drop(body) if event.get("type") == "DELETED" else incidents.put(body)
    op.incident_queue.add(key)


@kopf.on.event(G, V, "oncallschedules")
async def schedule_event(event: Any, memo: Memo, **_: Any) -> None:
    op = memo.require()
    body = event["object"]
    schedules = op.runtime.schedules
    key = schedules.drop(body) if event.get("type") == "DELETED" else schedules.put(body)
    op.schedule_queue.add(key)
