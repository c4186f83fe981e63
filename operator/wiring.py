"""The operator's parts, built once at start-up by explicit construction.

`Operator` owns the shared runtime, the three reconcilers and their work queues,
built in dependency order, each given what it uses: the queues first (a queue
exists before what processes it), then the runtime (a finished side effect wakes
its incident), then the reconcilers (a probe result or an incident's outcome wakes
incidents through the incident queue; the incident reconciler asks the services'
reconciler for probe health); `start` runs each queue with its reconciler. Kopf
hands it to every handler through `Memo`, the operator's memo
(`kopf.run(memo=Memo())`), instead of module globals.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

from paramedic import kube, metrics
from paramedic.domain.resources import Incident
from paramedic.domain.vocabulary import SEVERITIES
from paramedic.settings import Settings

from .incidents import IncidentReconciler
from .runtime import Key, Runtime
from .schedules import ScheduleReconciler
from .services import ServiceReconciler
from .workqueue import WorkQueue


class Operator:
    def __init__(self, settings: Settings, client: kube.AsyncKubeClient, identity: str = "standalone",
                 standalone: bool = True) -> None:
        """`identity`: this replica's name in the sharding's Leases and status.handledBy;
        `standalone`: hold every shard, write no Lease (one replica only)."""
        self.settings = settings
        workers = settings.workers
        # Service reconciles are two small API calls each; after a start thousands wait at once.
        self.service_queue: WorkQueue[Key] = WorkQueue("services", concurrency=max(2, workers // 2))
        self.incident_queue: WorkQueue[Key] = WorkQueue("incidents", concurrency=workers)
        self.schedule_queue: WorkQueue[Key] = WorkQueue("schedules", concurrency=2)
        self.runtime = rt = Runtime(settings, client, wake=self._effect_done, identity=identity,
                                    standalone=standalone, moved=self._shards_moved)
        self.services = ServiceReconciler(rt, incident_queue=self.incident_queue)
        self.incidents = IncidentReconciler(rt, services=self.services, queue=self.incident_queue)
        self.schedules = ScheduleReconciler(rt)
        self._tasks: list[asyncio.Task[None]] = []

    def _effect_done(self, owner: Hashable) -> None:
        # A side effect's result waits in memory: its incident records it on the next reconcile.
        if isinstance(owner, tuple) and owner:
            self.incident_queue.add(owner)

    def _shards_moved(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Objects of the shards gained are taken up, and those of the shards lost let go (their
        reconciles find them no longer this replica's: probes stop, nothing is written)."""
        rt = self.runtime
        moved = gained | lost
        for key, _ in rt.services.items():
            shard = rt.service_shard(key)
            if shard in gained:
                self.services.take_up(key)
            if shard in moved:
                self.service_queue.add(key)
        gone = set()
        for key, body in rt.incidents.items():
            shard = rt.incident_shard(body)
            if shard in gained:
                self.incident_queue.add(key)
            elif shard in lost:
                gone.add(key)
        rt.effects.forget(gone)
        for key, _ in rt.schedules.items():
            if rt.service_shard(key) in gained:
                self.schedule_queue.add(key)
        self._count_handled()

    def _count_handled(self) -> None:
        rt = self.runtime
        who = rt.shards.identity
        metrics.SERVICES_HANDLED.labels(who).set(sum(1 for key, _ in rt.services.items() if rt.owns_service(key)))
        metrics.INCIDENTS_HANDLED.labels(who).set(sum(1 for _, body in rt.incidents.items() if rt.owns_incident(body)))

    def queues(self) -> tuple[WorkQueue[Key], ...]:
        return self.service_queue, self.incident_queue, self.schedule_queue

    def start(self) -> None:
        """Workers, the prober and the open-incidents gauge (in the running event loop)."""
        self.service_queue.start(self.services.reconcile)
        self.incident_queue.start(self.incidents.reconcile)
        self.schedule_queue.start(self.schedules.reconcile)
        self.services.prober.start()
        self._tasks.append(asyncio.create_task(self.runtime.shards.start(), name="shards-start"))
        self._tasks.append(asyncio.create_task(self._open_gauge(), name="open-incidents-gauge"))
        self._tasks.append(asyncio.create_task(self.incidents.load_seal_key(), name="seal-key"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.services.prober.stop()
        for q in self.queues():
            await q.stop()
        await self.runtime.effects.stop()
        await self.runtime.shards.stop()  # once nothing of ours runs: the others take over at once
        await self.incidents.notifier.aclose()
        await self.runtime.client.aclose()

    async def _open_gauge(self) -> None:
        """paramedic_incidents_open (of this replica's shards) and what it handles, from the cache,
        looked at every few seconds and recomputed only when the caches or the shards this replica
        may act on changed: at rest nothing is scanned (no API calls either way)."""
        rt, seen = self.runtime, None
        while True:
            state = (rt.incidents.generation, rt.services.generation,
                     frozenset(s for s in range(rt.shards.count) if rt.shards.holds(s)))
            if state != seen:
                seen = state
                counts = Counter(inc.severity for inc in map(Incident, rt.incidents.values())
                                 if inc.active and rt.owns_incident(inc.body))
                for sev in SEVERITIES:
                    metrics.INCIDENTS_OPEN.labels(sev).set(counts.get(sev, 0))
                self._count_handled()
            await asyncio.sleep(5)


@dataclass
class Memo:
    """Kopf's operator-wide memo (each object's memo is a shallow copy: they share `operator`).
    `identity` and `standalone`: how this replica takes part in the sharding, given by main."""

    operator: Operator | None = None
    identity: str = "standalone"
    standalone: bool = True

    def require(self) -> Operator:
        if self.operator is None:
            raise RuntimeError("the operator has not started (its startup handler sets Memo.operator)")
        return self.operator
