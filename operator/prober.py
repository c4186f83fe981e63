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
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import http_exceptions
from yarl import URL

from paramedic import metrics, netguard
from paramedic.domain.outbound import OutboundPolicy
from paramedic.domain.probe import BODY_LIMIT, HEADER_LIMITS, ProbeFailure, ProbeResult, ProbeSpec, classify
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
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

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
                auto_decompress=False,  # the body is never read, so never inflated
                # Bounded buffers: the transport pauses once this much body waits unread
                # (aiohttp's default buffers 4x more per connection), and headers beyond
                # HEADER_LIMITS fail the probe instead of growing.
                read_bufsize=READ_BUFSIZE, **HEADER_LIMITS,
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
        loop = asyncio.get_running_loop()
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
            # Sleep until the next due probe or a change: a timer setting the event, not
            # asyncio.wait_for (a task and a timeout per wake-up, once per probe at these rates).
            self._wake.clear()
            timer = loop.call_at(self._heap[0][0], self._wake.set) if self._heap else None
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

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

    def _url(self, url: str) -> URL:
        """`url` parsed, once its host passed the literal-address check (each URL is parsed and
        checked once, not at every probe: the rules do not change while the prober runs)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = URL(url)
            netguard.refuse_literal(parsed, self._rules, netguard.PROBE)  # a refused one is never kept
            if len(self._urls) >= 2 * len(self._entries) + 64:
                self._urls.clear()  # URLs of edited or removed services
            self._urls[url] = parsed
        return parsed

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def check(self, spec: ProbeSpec) -> ProbeResult:
        """One HTTP GET, classified. The timeout bounds the whole probe (connect, headers and
        the bounded body read), so a target that drips bytes costs at most timeoutSeconds."""
        started = time.perf_counter()
        failure: ProbeFailure | None = None
        address_class = ""
        status = None
        try:
            # Redirects are not followed: the one hop is the one checked.
            async with self._open().get(self._url(spec.url), allow_redirects=False,
                                        timeout=self._timeout(spec.timeout)) as resp:
                status = resp.status
                if not await drain(resp.content, BODY_LIMIT):
                    resp.close()  # the rest is never read: the connection goes, not its bytes
        except (aiohttp.ClientError, http_exceptions.HttpProcessingError, OSError, ValueError) as exc:
            # (TimeoutError is an OSError.) The raw error may carry the target's words or map
            # other networks: only its class reaches status, its types the debug log.
            failure, address_class = failure_of(exc)
            log.debug("probe failed (%s): %s", failure, _chain(exc))
            status = None  # a parser error carries a made-up status (400): no answer was judged
        latency_ms = int((time.perf_counter() - started) * 1000)
        return classify(spec, utcnow(), status_code=status, latency_ms=latency_ms, failure=failure,
                        address_class=address_class)


READ_BUFSIZE = 4 * BODY_LIMIT
"""aiohttp's per-connection read buffer: the transport stops reading once about twice this waits
unread, so a target streaming without end holds at most that much per probe in flight."""


async def drain(content: aiohttp.StreamReader, limit: int) -> bool:
    """Read and drop at most `limit` bytes of a body; True when the body ended within them
    (the connection may then be reused)."""
    left = limit
    while left > 0:
        chunk = await content.read(left)
        if not chunk:
            return True
        left -= len(chunk)
    return content.at_eof()


def failure_of(exc: BaseException) -> tuple[ProbeFailure, str]:
    """The class of a failed probe's exception, and for a refused address its address class.
    Decided by exception types only, never by the (remote-influenced) message."""
    refused = netguard.refusal_in(exc)
    if refused is not None:
        return ProbeFailure.FORBIDDEN, str(refused.refusal.reason)
    chain = list(_causes(exc))
    if any(isinstance(e, TimeoutError) for e in chain):  # aiohttp's timeouts are TimeoutErrors too
        return ProbeFailure.TIMEOUT, ""
    if any(isinstance(e, (aiohttp.ClientConnectorDNSError, socket.gaierror)) for e in chain):
        return ProbeFailure.DNS, ""
    if any(isinstance(e, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch, ssl.SSLError)) for e in chain):
        return ProbeFailure.TLS, ""
    if any(isinstance(e, http_exceptions.LineTooLong) for e in chain) or any(
            isinstance(e, http_exceptions.BadHttpMessage) and e.message == _TOO_MANY_HEADERS
            for e in chain):
        return ProbeFailure.TOO_LARGE, ""
    if any(isinstance(e, (http_exceptions.HttpProcessingError, aiohttp.ClientResponseError,
                          aiohttp.ClientPayloadError)) for e in chain):
        return ProbeFailure.BAD_RESPONSE, ""
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ProbeFailure.REFUSED, ""
    if any(isinstance(e, (aiohttp.InvalidURL, ValueError)) for e in chain):
        return ProbeFailure.INVALID_URL, ""
    if any(isinstance(e, (aiohttp.ClientConnectionError, OSError)) for e in chain):
        return ProbeFailure.CONNECT, ""
    return ProbeFailure.BAD_RESPONSE, ""


_TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's own words (its parser), not the target's


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 16:
        seen.append(cur)
        if isinstance(cur, aiohttp.ClientConnectorError) and cur.os_error is not cur.__cause__:
            seen.append(cur.os_error)
        cur = cur.__cause__ or cur.__context__
    return seen


def _chain(exc: BaseException) -> str:
    """The exception classes behind a failure, for the operator's debug log (no messages)."""
    return " <- ".join(type(e).__name__ for e in _causes(exc))
