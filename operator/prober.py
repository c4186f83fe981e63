"""One shared probe scheduler for every MonitoredService.

A single timer heap and one pooled aiohttp session serve thousands of services:
no task or thread per object. First probes are spread over the interval by a
hash of the key, so a restarted operator does not probe everything at once.
aiohttp rather than httpx: httpcore's pool walks every pooled connection on each
request, which with thousands of origins cost 16x the CPU per probe
(bench/RESULTS.md, probe_scale).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp

from paramedic import metrics, netguard
from paramedic.domain.outbound import OutboundPolicy
from paramedic.domain.probe import ProbeResult, ProbeSpec, classify
from paramedic.domain.timeutil import utcnow

log = logging.getLogger(__name__)

# The key is the caller's (any hashable), handed back to it as given: Any, so that a callback may
# declare the key type it uses (Callable parameters are contravariant).
OnResult = Callable[[Any, ProbeSpec, ProbeResult], Awaitable[None]]

@dataclass
class _Entry:
    spec: ProbeSpec
    version: int
    due: float
    running: bool = False


class Prober:
    def __init__(self, on_result: OnResult, concurrency: int = 256, rules: OutboundPolicy | None = None):
        """`rules`: the outbound address rules (default: the safe defaults, no allowlist)."""
        self._on_result = on_result
        self._entries: dict[Hashable, _Entry] = {}
        self._heap: list[tuple[float, int, Hashable, int]] = []
        self._seq = itertools.count()
        self._versions = itertools.count(1)
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._rules = rules or OutboundPolicy()
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()

    # --- registry -------------------------------------------------------------
    def upsert(self, key: Hashable, spec: ProbeSpec) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.spec == spec:
            return
        now = time.monotonic()
        version = next(self._versions)
        if entry is None:
            # Spread first probes over one interval, deterministically per key.
            frac = int(hashlib.sha256(repr(key).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            entry = _Entry(spec, version, now + frac * min(spec.interval, 10.0))
            self._entries[key] = entry
        else:
            # An edited spec takes effect at the next probe, no later than one new interval.
            entry.spec, entry.version, entry.due = spec, version, min(entry.due, now + spec.interval)
        if not entry.running:
            heapq.heappush(self._heap, (entry.due, next(self._seq), key, version))
            self._wake.set()

    def remove(self, key: Hashable) -> None:
        self._entries.pop(key, None)  # its heap items go stale and are skipped

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    # --- running ----------------------------------------------------------------
    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The address rules sit in the resolver: the address checked is the address
            # connected to (paramedic.netguard).
            self._session = netguard.guarded_session(
                self._rules, netguard.PROBE,
                connector_args={"limit": self._concurrency, "keepalive_timeout": 15, "ttl_dns_cache": 60},
                headers={"User-Agent": "paramedic-probe/1"},
                auto_decompress=False,  # the body is drained, never read
            )
        return self._session

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="prober")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for t in list(self._inflight):
            t.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                due, _, key, version = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or entry.version != version or entry.running:
                    continue
                entry.running = True
                metrics.PROBE_LAG.observe(max(0.0, now - due))
                task = asyncio.create_task(self._probe(key, entry))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            timeout = self._heap[0][0] - time.monotonic() if self._heap else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _probe(self, key: Hashable, entry: _Entry) -> None:
        spec = entry.spec
        try:
            async with self._sem:
                result = await self.check(spec)
            metrics.PROBE_DURATION.observe((result.latency_ms or 0) / 1000)
            try:
                await self._on_result(key, spec, result)
            except Exception:
                log.exception("handling the probe result of %s failed", key)
        finally:
            entry.running = False
            if self._entries.get(key) is entry:
                # Fixed rate: the next probe is one interval after the last due time,
                # never in the past (a slow round does not cause a burst).
                entry.due = max(entry.due + entry.spec.interval, time.monotonic())
                heapq.heappush(self._heap, (entry.due, next(self._seq), key, entry.version))
                self._wake.set()

    async def check(self, spec: ProbeSpec) -> ProbeResult:
        """One HTTP GET, classified."""
        started = time.perf_counter()
        error = ""
        status = None
        try:
            # Redirects are not followed: the one hop is the one checked.
            netguard.refuse_literal(spec.url, self._rules, netguard.PROBE)
            async with self._open().get(spec.url, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=spec.timeout)) as resp:
                status = resp.status
                await resp.read()  # drain, so the connection can be reused
        except netguard.OutboundRefused as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = f"timeout after {spec.timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            refused = netguard.refusal_in(exc)
            error = f"refused: {refused}" if refused else f"connection failed: {_root_cause(exc)}"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{exc.__class__.__name__}: {_root_cause(exc)}"
        latency_ms = int((time.perf_counter() - started) * 1000)
        return classify(spec, utcnow(), status_code=status, latency_ms=latency_ms, error=error)


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc) or exc.__class__.__name__
