"""A keyed work queue with delayed re-adds, as controllers use.

One key is never processed by two workers at once; adding a key that is being
processed marks it dirty so it runs again afterwards. Delays share one timer
heap, so thousands of objects cost one task, not one each. As client-go's, the
queue exists before what processes it: keys may be added from construction on,
and `start(worker)` runs the workers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
Worker = Callable[[K], Awaitable["float | None"]]


class WorkQueue(Generic[K]):
    def __init__(self, name: str, concurrency: int = 8, max_backoff: float = 60.0):
        self.name = name
        self._concurrency = concurrency
        self._max_backoff = max_backoff
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def add(self, key: K, delay: float = 0.0) -> None:
        if delay > 0:
            when = time.monotonic() + delay
            # Keep only the earliest pending wake-up per key.
            if key in self._due and self._due[key] <= when:
                return
            self._due[key] = when
            heapq.heappush(self._delayed, (when, next(self._seq), key))
            self._wake.set()
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def start(self, worker: Worker[K]) -> None:
        """`concurrency` tasks running `worker` on each ready key (in the running event loop)."""
        self._tasks.append(asyncio.create_task(self._timer(), name=f"{self.name}-timer"))
        for i in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._run(worker), name=f"{self.name}-worker-{i}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def pending(self) -> int:
        return len(self._queued) + len(self._active)

    async def _timer(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                when, _, key = heapq.heappop(self._delayed)
                if self._due.get(key) == when:
                    del self._due[key]
                    self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _run(self, worker: Worker[K]) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                requeue = await worker(key)
                self._failures.pop(key, None)
                if requeue is not None:
                    self.add(key, max(requeue, 0.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed reconciliation is retried with backoff, never lost
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                delay = min(self._max_backoff, 0.5 * 2 ** (n - 1))
                log.exception("%s: reconciling %s failed (attempt %d), retrying in %.1fs", self.name, key, n, delay)
                self.add(key, delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
