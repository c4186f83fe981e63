"""Which workload owns a pod, for routing alerts that name only a pod.

The receiver asks only for alerts no cheaper rule claims, and only when a target
of the alert's namespace could own a pod of that name (`domain.alert_routing.pod_to_look_up`).
Answers are cached with bounds (entries and age), so a storm of alerts about the
pods of one Deployment costs one GET per pod, and one per ReplicaSet, per
`TTL_SECONDS`. Reads stay in the alert's namespace: the lookup never crosses one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from . import kube, metrics
from .domain.alert_routing import Workload, controller_of

log = logging.getLogger("paramedic.owners")

MAX_ENTRIES = 10_000
"""Pods (and, apart, ReplicaSets) remembered at most; the least recently used go first."""
TTL_SECONDS = 300.0
"""How long an owner is trusted: a pod's controller does not change in its life (orphaning aside)."""
MISSING_TTL_SECONDS = 15.0
"""How long "no such pod" (or "not allowed to read it") is trusted: a pod may appear after its alert."""

T = TypeVar("T")


@dataclass(frozen=True)
class PodOwner:
    """The workload owning a pod (None: none of Deployment, StatefulSet, DaemonSet, or unknown);
    `exists` is False when the pod is gone (its name is then all there is to go by)."""

    workload: Workload | None
    exists: bool = True


class _TTLCache(Generic[T]):
    def __init__(self, size: int, clock: Callable[[], float]):
        self.size, self.clock = size, clock
        self._items: OrderedDict[tuple[str, str], tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, T | None]:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            if item[0] <= self.clock():
                del self._items[key]
                return False, None
            self._items.move_to_end(key)
            return True, item[1]

    def put(self, key: tuple[str, str], value: T, ttl: float) -> None:
        with self._lock:
            self._items[key] = (self.clock() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class PodOwners:
    """Pod → owning workload through the API server (GET pod, GET its ReplicaSet), cached."""

    def __init__(self, client: kube.KubeClient, *, size: int = MAX_ENTRIES, ttl: float = TTL_SECONDS,
                 missing_ttl: float = MISSING_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.ttl, self.missing_ttl = ttl, missing_ttl
        self._pods: _TTLCache[PodOwner] = _TTLCache(size, clock)
        self._replicasets: _TTLCache[Workload | None] = _TTLCache(size, clock)
        self._warned_forbidden = False

    def owner(self, namespace: str, pod: str) -> PodOwner:
        """The pod's owner. Raises kube.Unavailable (the sender retries); a 403 counts as unknown."""
        hit, cached = self._pods.get((namespace, pod))
        if hit and cached is not None:
            metrics.POD_OWNER_LOOKUPS.labels("cached").inc()
            return cached
        try:
            body = self.client.get_or_none(kube.PODS, pod, namespace)
            if body is None:
                found, result, ttl = PodOwner(None, exists=False), "gone", self.missing_ttl
            else:
                workload = self._workload(namespace, controller_of(body))
                found, result, ttl = PodOwner(workload), ("found" if workload else "unowned"), self.ttl
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            self._forbidden(exc)
            found, result, ttl = PodOwner(None), "forbidden", self.missing_ttl
        metrics.POD_OWNER_LOOKUPS.labels(result).inc()
        self._pods.put((namespace, pod), found, ttl)
        return found

    def _workload(self, namespace: str, controller: Workload | None) -> Workload | None:
        if controller is None:
            return None
        if controller.kind in ("StatefulSet", "DaemonSet"):
            return controller
        if controller.kind != "ReplicaSet":
            return None
        hit, cached = self._replicasets.get((namespace, controller.name))
        if hit:
            return cached
        rs = self.client.get_or_none(kube.REPLICASETS, controller.name, namespace)
        owner = controller_of(rs) if rs is not None else None
        workload = owner if owner is not None and owner.kind == "Deployment" else None
        self._replicasets.put((namespace, controller.name), workload, self.ttl if rs is not None else self.missing_ttl)
        return workload

    def _forbidden(self, exc: kube.ApiError) -> None:
        if not self._warned_forbidden:
            self._warned_forbidden = True
            log.warning("cannot read pods or replicasets to route alerts by their pod (%s): grant the "
                        "receiver get on pods and replicasets (manifests/rbac.yaml, the chart's RBAC)", exc.message)

    def __len__(self) -> int:
        return len(self._pods)
