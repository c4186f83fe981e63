"""Watch-fed caches: one `Cache` (latest bodies by namespace and name, an optional index,
views rebuilt once per change), fed by the operator's Kopf handlers or by an `Informer`.

The receiver routes every alert against the MonitoredServices of its namespace.
Listing them on every request costs a LIST whose size grows with the namespace
(26-80 ms for 230 services, measured), so each namespace that has services gets
an informer: a daemon thread that lists once, then watches, and serves the
latest bodies from memory. It is exactly as fresh as the watch-cache LIST it
replaces. Until it has listed, or while its watch has been failing for longer
than `STALE_AFTER` seconds, it says so (`fresh` is false) and callers read from
the API server instead. The console's per-person lists use informers too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential

from . import kube
from .domain.resources import Resource as View

log = logging.getLogger("paramedic.informer")

STALE_AFTER = 10.0
"""A watch broken for longer than this no longer answers for the namespace."""
WATCH_SECONDS = 240
"""Server-side timeout of one watch request; the informer then re-watches from where it was."""
MAX_INFORMERS = 100
"""Namespaces watched at most per process; alerts from further namespaces are routed by LIST."""

Key = tuple[str, str]  # (namespace, name)


def key_of(body: Mapping[str, Any]) -> Key:
    view = View(body)
    return view.namespace, view.name


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int(View(body).resource_version or 0)
    except ValueError:
        return 0


class Cache:
    """Latest body of each watched object, by (namespace, name), with an optional secondary
    index (`indexed`) and views (`view`: a value built from all bodies, kept until they change).
    Thread-safe: informers feed it from their threads, the operator from its event loop."""

    def __init__(self, index: Callable[[dict[str, Any]], Hashable] | None = None) -> None:
        self._items: dict[Key, dict[str, Any]] = {}
        self._index_of = index
        self._index: dict[Hashable, set[Key]] = {}
        self._generation = 0  # moves with every change of _items
        self._views: dict[Callable[[list[dict[str, Any]]], Any], tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def put(self, body: dict[str, Any]) -> Key:
        key = key_of(body)
        with self._lock:
            old = self._items.get(key)
            # Watch events can arrive after our own write's response: keep the newer one.
            if old is None or _rv(body) >= _rv(old):
                self._store(key, body, old)
        return key

    def drop(self, body: Mapping[str, Any]) -> Key:
        key = key_of(body)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._generation += 1
                self._unindex(key, old)
        return key

    def reset(self, bodies: Iterable[dict[str, Any]]) -> None:
        """Exactly `bodies` from now on (a fresh LIST)."""
        with self._lock:
            self._items, self._index = {}, {}
            for body in bodies:
                self._store(key_of(body), body, None)
            self._generation += 1

    def _store(self, key: Key, body: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._items[key] = body
        self._generation += 1
        if self._index_of is not None:
            if old is not None:
                self._unindex(key, old)
            self._index.setdefault(self._index_of(body), set()).add(key)

    def _unindex(self, key: Key, body: dict[str, Any]) -> None:
        if self._index_of is None:
            return
        value = self._index_of(body)
        keys = self._index.get(value)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._index[value]

    def get(self, key: Key) -> dict[str, Any] | None:
        return self._items.get(key)

    def indexed(self, value: Hashable) -> list[dict[str, Any]]:
        """The objects whose index value is `value`."""
        with self._lock:
            return [self._items[k] for k in self._index.get(value, ())]

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def items(self) -> list[tuple[Key, dict[str, Any]]]:
        with self._lock:
            return list(self._items.items())

    def view(self, build: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """`build(values)`, computed again only after the values changed (an index over them)."""
        with self._lock:
            generation = self._generation
            cached = self._views.get(build)
            if cached is not None and cached[0] == generation:
                return cached[1]
            items = list(self._items.values())
        value = build(items)
        with self._lock:
            self._views[build] = (generation, value)
        return value

    @property
    def generation(self) -> int:
        """Moves with every change: what was computed from the same generation still holds."""
        return self._generation

    def __len__(self) -> int:
        return len(self._items)


class Informer:
    """The objects of one resource in one namespace (all namespaces with None), in a `Cache`
    fed by a LIST, then a watch, from a daemon thread."""

    def __init__(self, client: kube.KubeClient, res: kube.Resource, namespace: str | None):
        self.client, self.res, self.namespace = client, res, namespace
        self.cache = Cache()
        self._rv = ""
        self._listed = False
        self._failing_since: float | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"informer-{res.plural}-{namespace}")

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # the running watch ends within WATCH_SECONDS; the thread is a daemon

    @property
    def fresh(self) -> bool:
        failing = self._failing_since
        return self._listed and (failing is None or time.monotonic() - failing < STALE_AFTER)

    def seen(self, resource_version: str) -> bool:
        """Whether the cache is at least as new as `resource_version` (etcd's are integers)."""
        try:
            return int(self._rv or 0) >= int(resource_version or 0)
        except ValueError:
            return False

    def items(self) -> list[dict[str, Any]]:
        return self.cache.values()

    def view(self, build: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """`build(items)`, computed again only after the items changed (an index over them)."""
        return self.cache.view(build)

    def _run(self) -> None:
        # Retried forever (callers fall back to LIST meanwhile): 0.5 s doubling up to 30 s
        # between failures, waiting on the stop event so that stop() cuts a wait short. A watch
        # that ends normally (its server-side timeout) starts the back-off over.
        retrying = Retrying(wait=wait_exponential(multiplier=0.5, max=30.0), sleep=self._pause,
                            stop=lambda _state: self._stopped.is_set(), before_sleep=self._failed, reraise=True)
        while not self._stopped.is_set():
            try:
                retrying(self._round)
            except Exception:  # stopped while failing
                return

    def _pause(self, seconds: float) -> None:
        self._stopped.wait(seconds)

    def _round(self) -> None:
        if self._stopped.is_set():  # stopped during a back-off wait
            return
        try:
            if not self._rv:
                self._relist()
            self._watch()
            self._failing_since = None
        except kube.Expired:
            self._rv = ""  # too far behind: list again

    def _failed(self, state: RetryCallState) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            exc = state.outcome.exception() if state.outcome else None
            log.warning("watch of %s in %s failed, retrying: %s", self.res.plural, self.namespace, exc)

    def _relist(self) -> None:
        out = self.client.request("GET", self.res.path(self.namespace))
        self.cache.reset(out.get("items", []))
        self._rv = View(out).resource_version
        self._listed = True
        self._failing_since = None

    def _watch(self) -> None:
        for event in self.client.watch(self.res, self.namespace, self._rv, WATCH_SECONDS):
            if self._stopped.is_set():
                return
            kind, obj = event.get("type"), event.get("object")
            if isinstance(obj, dict):
                if kind in ("ADDED", "MODIFIED"):
                    self.cache.put(obj)
                elif kind == "DELETED":
                    self.cache.drop(obj)
                self._rv = View(obj).resource_version or self._rv  # BOOKMARK events carry only this
            self._failing_since = None


class Directory:
    """Informers of one resource, one per namespace, started on demand (thread-safe)."""

    def __init__(self, client: kube.KubeClient, res: kube.Resource, limit: int = MAX_INFORMERS):
        self.client, self.res, self.limit = client, res, limit
        self._informers: dict[str, Informer] = {}
        self._lock = threading.Lock()

    def items(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's objects: from its informer when fresh, else one watch-cache LIST
        (and, when that finds any, an informer starts for the next requests)."""
        informer = self._informers.get(namespace)
        if informer is not None and informer.fresh:
            return informer.items()
        items = self.client.list(self.res, namespace, cached=True)
        if items and informer is None:
            with self._lock:
                if namespace not in self._informers and len(self._informers) < self.limit:
                    self._informers[namespace] = Informer(self.client, self.res, namespace).start()
        return items

    def view(self, namespace: str, build: Callable[[list[dict[str, Any]]], Any]) -> Any:
        """`build` over the namespace's objects (see `items`): kept between calls while the
        informer answers and nothing changed, so an index is built once per change, not per request."""
        informer = self._informers.get(namespace)
        if informer is not None and informer.fresh:
            return informer.view(build)
        return build(self.items(namespace))

    def fresh(self, namespace: str) -> bool:
        """Whether the namespace is answered from memory."""
        informer = self._informers.get(namespace)
        return informer is not None and informer.fresh

    def stop(self) -> None:
        with self._lock:
            for informer in self._informers.values():
                informer.stop()

