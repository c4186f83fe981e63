"""What the operator's reconcilers share: settings, the API client, caches of the
watched objects (`paramedic.informer.Cache`, fed by Kopf's watches through the handlers),
and background side effects.

Caches and queues are rebuilt from the watches after a restart; nothing here is
the source of truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paramedic import kube, metrics
from paramedic.domain import sharding
from paramedic.domain.resources import Incident
from paramedic.domain.resources import Resource as View
from paramedic.informer import Cache, Key
from paramedic.settings import Settings

from .shards import MemberLease, Moved, Shards

log = logging.getLogger(__name__)


def incident_service(body: dict) -> Key:
    """(namespace, service) of an Incident: the index of the incidents cache."""
    incident = Incident(body)
    return incident.namespace, incident.service


def _nobody(owner: Hashable) -> None:
    return None


@dataclass
class SideEffects:
    """At most one background task per key (a notification, a remediation attempt).

    Results wait in memory until the owning reconciler records them in status;
    a crash loses only the result, and the reconciler then resumes the decision
    from what status says.
    """

    done_callback: Callable[[Hashable], None] = _nobody
    _tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    _results: dict[str, Any] = field(default_factory=dict)
    _owners: dict[str, Hashable] = field(default_factory=dict)  # of the running and the unrecorded

    def running(self, key: str) -> bool:
        task = self._tasks.get(key)
        return task is not None and not task.done()

    def spawn(self, key: str, owner: Hashable, coro: Awaitable[Any]) -> None:
        if self.running(key) or key in self._results:
            coro.close()  # type: ignore[attr-defined]
            return

        async def run() -> None:
            result: Any
            try:
                try:
                    result = await coro
                except Exception as exc:  # recorded as a failed result, never raised into the void
                    log.exception("side effect %s failed", key)
                    result = exc
                if owner is not None:  # fire-and-forget effects (events, releases) keep nothing
                    self._results[key] = result
            finally:
                self._tasks.pop(key, None)
                if key not in self._results:
                    self._owners.pop(key, None)
                self.done_callback(owner)

        if owner is not None:
            self._owners[key] = owner
        self._tasks[key] = asyncio.create_task(run(), name=f"effect:{key}")

    def forget(self, owners: Collection[Hashable]) -> None:
        """Drop the unrecorded results of these owners (their shard moved: the next holder
        resumes from what status says, and this replica may no longer record anything)."""
        for key in [k for k, owner in self._owners.items() if owner in owners and k in self._results]:
            self._results.pop(key, None)
            self._owners.pop(key, None)

    def busy_owners(self) -> set[Hashable]:
        """Owners with an effect running or a result not yet recorded (their work is under way)."""
        return set(self._owners.values())

    def has_result(self, key: str) -> bool:
        return key in self._results

    def peek(self, key: str) -> Any:
        return self._results.get(key)

    def take(self, key: str) -> Any:
        self._owners.pop(key, None)
        return self._results.pop(key, None)

    async def stop(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


def _unmoved(gained: frozenset[int], lost: frozenset[int]) -> None:
    return None


class Runtime:
    """State every reconciler shares; the reconcilers and their queues are wired in `wiring.Operator`.
    `wake` is called with each finished side effect's owner (the operator queues that incident);
    `moved` with the shards this replica gained and lost. A `standalone` replica holds every
    shard and writes no Lease."""

    def __init__(self, settings: Settings, client: kube.AsyncKubeClient,
                 wake: Callable[[Hashable], None] = _nobody, identity: str = "standalone", standalone: bool = True,
                 moved: Moved = _unmoved):
        self.settings = settings
        self.client = client
        self.services = Cache()
        self.incidents = Cache(index=incident_service)
        self.schedules = Cache()
        self.effects = SideEffects(done_callback=wake)
        # The member Lease is renewed from a thread with its own (synchronous) client, so that
        # a busy event loop cannot make this replica look dead.
        member = None if standalone else MemberLease(settings, kube.KubeClient.from_settings(settings), identity)
        self.shards = Shards(settings, client, identity, member=member, moved=moved, busy=self._busy_shards)
        # Events are for people reading `kubectl describe`; thousands of incidents opened
        # at once (a start after downtime) must not double the API server's load with them.
        self._events = TokenBucket(settings.events_per_second, settings.events_per_second * 10)
        self._events_dropped_logged = 0.0

    # --- which objects this replica acts on (the fence: checked before every write that acts) ---
    def service_shard(self, key: Key) -> int:
        return sharding.shard_of(key[0], key[1], self.shards.count)

    def owns_service(self, key: Key) -> bool:
        return self.shards.holds(self.service_shard(key))

    def incident_shard(self, body: Mapping[str, Any]) -> int:
        return sharding.incident_shard(body, self.shards.count)

    def owns_incident(self, body: Mapping[str, Any]) -> bool:
        return self.shards.holds(self.incident_shard(body))

    def owns_schedule(self, key: Key) -> bool:
        return self.shards.holds(self.service_shard(key))  # a schedule is spread by its name, as a service

    def _busy_shards(self) -> frozenset[int]:
        """Shards with a remediation, page or evidence under way or unrecorded: kept until done."""
        busy = set()
        for owner in self.effects.busy_owners():
            body = self.incidents.get(owner) if isinstance(owner, tuple) else None
            if body is not None:
                busy.add(self.incident_shard(body))
        return frozenset(busy)

    async def post_event(self, regarding: dict, reason: str, note: str, type_: str = "Normal") -> None:
        """Kubernetes Events are best effort: a failure is logged, never fatal; over the rate, dropped."""
        if not self._events.take():
            metrics.EVENTS_DROPPED.inc()
            if time.monotonic() - self._events_dropped_logged > 60:
                self._events_dropped_logged = time.monotonic()
                log.warning("over %g Kubernetes Events a second: dropping some (see paramedic_events_dropped_total; "
                            "incident timelines are complete)", self.settings.events_per_second)
            return
        try:
            ns = View(regarding).namespace or None
            await self.client.create(kube.EVENTS, kube.event_body(regarding, reason, note, type_), namespace=ns)
        except (kube.ApiError, kube.Unavailable) as exc:
            log.warning("could not post event %s: %s", reason, exc)
