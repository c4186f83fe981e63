"""Evidence I/O: the reads behind an incident's `status.evidence`.

One gathering costs a fixed number of requests whatever the incident's history: the
workload, its revisions (ReplicaSets or ControllerRevisions, one list), its pods (one
list), the namespace's Warning Events (one list) and each node involved (at most
`evidence.MAX_NODES` gets). What to keep is decided by `paramedic.domain.evidence`.

The evidence is about a target, not an incident: `Gatherer` shares one gathering among
the incidents of a target that ask within a short while, so the reads grow with the
targets, not with their incidents.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from datetime import datetime
from typing import Any

from . import kube
from .domain import evidence
from .domain.resources import Resource, mapping, text
from .domain.timeutil import utcnow


class Gatherer:
    """`gather` for many incidents: a gathering of the same target (namespace, kind, name, log
    lines) in flight is joined, and one finished less than `share_seconds` ago is handed out
    again (with its own gatheredAt: how old it is stays visible). At most `concurrency`
    gatherings run at once. Results are shared: callers must not change them."""

    def __init__(self, client: kube.AsyncKubeClient, concurrency: int, share_seconds: float,
                 clock: Any = time.monotonic):
        self.client = client
        self.share_seconds = share_seconds
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._clock = clock
        self._running: dict[Hashable, asyncio.Future[dict[str, Any]]] = {}
        self._done: dict[Hashable, tuple[float, dict[str, Any]]] = {}  # oldest first

    async def gather(self, namespace: str, target: dict[str, Any], log_lines: int = 0) -> dict[str, Any]:
        key = (namespace, str(target.get("kind") or "Deployment"), str(target.get("name") or ""), log_lines)
        now = self._clock()
        while self._done:  # forget what is too old to share, oldest first
            first = next(iter(self._done))
            if now - self._done[first][0] < self.share_seconds:
                break
            del self._done[first]
        if key in self._done:
            return self._done[key][1]
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._gather(key, namespace, target, log_lines))
            # Its waiters may all be gone (cancelled at shutdown): the outcome is read here too,
            # so a failure is not reported as never retrieved.
            running.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._running[key] = running
        # A caller cancelled (its incident's task) does not cancel the gathering others wait for.
        return await asyncio.shield(running)

    async def _gather(self, key: Hashable, namespace: str, target: dict[str, Any], log_lines: int) -> dict[str, Any]:
        try:
            found = await gather(self.client, namespace, target, utcnow(), self._slots, log_lines)
        finally:
            del self._running[key]
        self._done.pop(key, None)
        self._done[key] = (self._clock(), found)
        return found


async def gather(client: kube.AsyncKubeClient, namespace: str, target: dict[str, Any], now: datetime,
                 slots: asyncio.Semaphore | None = None, log_lines: int = 0) -> dict[str, Any]:
    """`status.evidence` for `target` ({kind, name}) in `namespace`; `slots` bounds concurrent
    gatherings. With `log_lines` (a service's `spec.evidence.logs`, off by default: logs can
    hold secrets), the last lines of the first broken container's log too (one more request)."""
    if slots is None:
        ev = await _gather(client, namespace, target, now)
    else:
        async with slots:
            ev = await _gather(client, namespace, target, now)
    if log_lines > 0:
        ev["logs"] = await _logs(client, namespace, ev, log_lines, now)
    return ev


async def _logs(client: kube.AsyncKubeClient, namespace: str, ev: dict[str, Any], lines: int,
                now: datetime) -> list[dict[str, Any]]:
    found = evidence.log_target(ev)
    if found is None:
        return []
    pod, container, previous = found
    params = {"container": container, "tailLines": str(lines), "limitBytes": str(4 * evidence.MAX_LOG_CHARS),
              "previous": "true" if previous else "false"}
    try:
        text = await client.get_text(kube.PODS, pod, namespace, "log", params)
    except kube.ApiError as exc:
        text = f"(log not available: {exc.message or exc})"
    return [evidence.log_item(pod, container, previous, text, now)]


async def _gather(client: kube.AsyncKubeClient, namespace: str, target: dict[str, Any],
                  now: datetime) -> dict[str, Any]:
    kind, name = str(target.get("kind") or "Deployment"), str(target.get("name") or "")
    res = kube.WORKLOADS.get(kind)
    if res is None:
        raise ValueError(f"unsupported target kind {kind!r}")
    workload = await client.get_or_none(res, name, namespace)
    if workload is None:
        return evidence.build(kind, {"metadata": {"name": name}}, [], [], [], [], now) | {
            "error": f"{kind} {name} not found in namespace {namespace}"}
    uid = Resource(workload).uid
    labels = dict(mapping(mapping(Resource(workload).spec.get("selector")).get("matchLabels")))
    revisions: list[evidence.Revision]
    if kind == "Deployment":
        sets = await client.list(kube.REPLICASETS, namespace, labels=labels)
        revisions = [evidence.replicaset_revision(rs) for rs in sets if evidence.owned_by(rs, uid)]
        owners = {Resource(rs).uid for rs in sets if evidence.owned_by(rs, uid)}
    else:
        crs = await client.list(kube.CONTROLLER_REVISIONS, namespace, labels=labels)
        revisions = [evidence.controller_revision(cr) for cr in crs if evidence.owned_by(cr, uid)]
        owners = {uid}
    pods = [p for p in await client.list(kube.PODS, namespace, labels=labels)
            if any(evidence.owned_by(p, owner) for owner in owners)]
    events = await client.list(kube.EVENTS, namespace, field_selector="type=Warning")
    node_names = sorted({text(Resource(p).spec.get("nodeName")) for p in pods} - {""})[: evidence.MAX_NODES]
    nodes = [n for n in [await client.get_or_none(kube.NODES, n) for n in node_names] if n is not None]
    return evidence.build(kind, workload, revisions, pods, events, nodes, now)
