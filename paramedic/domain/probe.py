"""Health probing rules: what counts as a failure, thresholds, health, availability.

The prober feeds one `ProbeResult` at a time into `advance`, which returns the
new `ProbeState` and what changed. The state round-trips through the
MonitoredService status, so a restarted operator continues where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .resources import mapping, sequence, text
from .timeutil import iso, parse_or_none

HEALTHY, DEGRADED, DOWN, UNKNOWN = "Healthy", "Degraded", "Down", "Unknown"
BUCKET_SECONDS = 300  # availability history granularity
DAY_SECONDS = 86400

PROBE_DEFAULTS = {
    "expectedStatus": 200,
    "intervalSeconds": 30,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
    "successThreshold": 2,
}


@dataclass(frozen=True)
class ProbeSpec:
    url: str
    expected_status: int = 200
    interval: float = 30
    timeout: float = 5
    latency_threshold_ms: int | None = None
    failure_threshold: int = 3
    success_threshold: int = 2

    @classmethod
    def from_service(cls, service: dict[str, Any]) -> ProbeSpec | None:
        """None when the service has no probe."""
        spec = service.get("spec", {})
        probe = spec.get("probe")
        if not probe:
            return None
        p = {**PROBE_DEFAULTS, **probe}
        return cls(
            url=probe_url(probe, service.get("metadata", {}).get("namespace", "default")),
            expected_status=int(p["expectedStatus"]),
            interval=float(p["intervalSeconds"]),
            timeout=float(p["timeoutSeconds"]),
            latency_threshold_ms=p.get("latencyThresholdMs"),
            failure_threshold=int(p["failureThreshold"]),
            success_threshold=int(p["successThreshold"]),
        )


def probe_url(probe: dict[str, Any], namespace: str) -> str:
    if probe.get("url"):
        url: str = probe["url"]
        return url
    svc = probe.get("service") or {}
    path = svc.get("path", "/")
    if not path.startswith("/"):
        path = "/" + path
    return f"{svc.get('scheme', 'http')}://{svc['name']}.{namespace}.svc:{svc['port']}{path}"


BODY_LIMIT = 4096
"""Most bytes of a response body a probe reads. A probe judges the status code and the latency,
never the body; a body up to this size is read so that the connection can be reused, a longer
one is left unread and its connection closed. Memory per probe stays bounded however much a
target sends (MonitoredService URLs are written by namespace users)."""

HEADER_LIMITS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 32}
"""The bounds of a response's status line and headers (aiohttp's parser): longer lines or more
headers fail the probe as `TOO_LARGE`. At most 32 header fields of 8 KiB each per probe in flight."""


class ProbeFailure(StrEnum):
    """Why a probe failed (MonitoredService `status.lastProbe.reason`). Status records this class
    and a message built from it alone: never the target's words (an error text or a body a
    namespace user's server sends) nor a raw connection error (which maps other networks)."""

    FORBIDDEN = "ForbiddenAddress"    # the outbound rules refuse the address: nothing was sent
    INVALID_URL = "InvalidURL"
    DNS = "DNS"                       # the name did not resolve
    REFUSED = "ConnectionRefused"
    CONNECT = "ConnectionFailed"      # unreachable, reset, closed before an answer
    TIMEOUT = "Timeout"               # no complete answer within timeoutSeconds
    TLS = "TLS"                       # handshake or certificate verification failed
    TOO_LARGE = "ResponseTooLarge"    # status line or headers beyond HEADER_LIMITS
    BAD_RESPONSE = "BadResponse"      # not valid HTTP
    STATUS = "UnexpectedStatus"
    SLOW = "Slow"                     # over latencyThresholdMs


def failure_message(failure: ProbeFailure, spec: ProbeSpec, *, status_code: int | None = None,
                    latency_ms: int | None = None, address_class: str = "") -> str:
    """The status text of a failure: only the class and what the spec and the operator know."""
    if failure is ProbeFailure.FORBIDDEN:
        what = f"a {address_class} address" if address_class else "an address the outbound rules refuse"
        return (f"refused: the target is {what}, which probes reach only when the admin's allowlist "
                f"(PARAMEDIC_PROBE_ALLOW_CIDRS) names it; nothing was sent")
    if failure is ProbeFailure.TIMEOUT:
        return f"timeout after {spec.timeout:g}s"
    if failure is ProbeFailure.STATUS:
        return f"status {status_code}, expected {spec.expected_status}"
    if failure is ProbeFailure.SLOW:
        return f"latency {latency_ms} ms over threshold {spec.latency_threshold_ms} ms"
    return _MESSAGES[failure]


_MESSAGES: dict[ProbeFailure, str] = {
    ProbeFailure.INVALID_URL: "invalid URL",
    ProbeFailure.DNS: "DNS: the host name did not resolve",
    ProbeFailure.REFUSED: "connection refused",
    ProbeFailure.CONNECT: "connection failed (unreachable, reset or closed before an answer)",
    ProbeFailure.TLS: "TLS handshake or certificate verification failed",
    ProbeFailure.TOO_LARGE: (f"response status line or headers too large (at most {HEADER_LIMITS['max_headers']} "
                             f"headers of {HEADER_LIMITS['max_field_size']} bytes)"),
    ProbeFailure.BAD_RESPONSE: "not a valid HTTP response",
}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    time: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""  # failure_message(failure): never the target's words
    slow: bool = False  # failed only because it was slower than the threshold
    failure: ProbeFailure | None = None


def classify(spec: ProbeSpec, now: datetime, *, status_code: int | None, latency_ms: int | None,
             failure: ProbeFailure | None = None, address_class: str = "") -> ProbeResult:
    """A failure is a transport failure (`failure`: timeout, refused, DNS...), a wrong status, or a
    slow answer. `address_class` says which class of address a FORBIDDEN one is."""
    if failure is not None:
        text = failure_message(failure, spec, status_code=status_code, latency_ms=latency_ms, address_class=address_class)
        return ProbeResult(False, now, status_code, latency_ms, text, slow=failure is ProbeFailure.SLOW, failure=failure)
    if status_code != spec.expected_status:
        return ProbeResult(False, now, status_code, latency_ms,
                           failure_message(ProbeFailure.STATUS, spec, status_code=status_code),
                           failure=ProbeFailure.STATUS)
    if spec.latency_threshold_ms is not None and latency_ms is not None and latency_ms > spec.latency_threshold_ms:
        return ProbeResult(False, now, status_code, latency_ms,
                           failure_message(ProbeFailure.SLOW, spec, latency_ms=latency_ms), slow=True,
                           failure=ProbeFailure.SLOW)
    return ProbeResult(True, now, status_code, latency_ms)


LAST_PROBE_KEYS = ("time", "ok", "statusCode", "latencyMs", "reason", "error")
"""Every key of `status.lastProbe`. Status is written with a JSON merge patch, which keeps any key
it does not name: a key a probe result lacks is written as null, so an old `error` goes away."""


@dataclass(frozen=True)
class ProbeState:
    health: str = UNKNOWN
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    outage_count: int = 0
    open_incident: str = ""
    last_transition: str = ""
    history: tuple[tuple[int, int, int], ...] = ()  # (bucket start epoch, ok, total)
    last_probe: dict[str, Any] = field(default_factory=dict)
    outage_held: bool = False  # an outage began in a maintenance window: no incident unless it outlasts it

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> ProbeState:
        """The state a MonitoredService's status records (`resources.Service(body).status`)."""
        s = mapping(status)
        hist = tuple((int(b.get("start", 0)), int(b.get("ok", 0)), int(b.get("total", 0)))
                     for b in sequence(s.get("probeHistory")))
        return cls(
            health=text(s.get("health"), UNKNOWN),
            consecutive_successes=int(s.get("consecutiveSuccesses") or 0),
            consecutive_failures=int(s.get("consecutiveFailures") or 0),
            outage_count=int(s.get("outageCount") or 0),
            open_incident=text(s.get("openIncident")),
            last_transition=text(s.get("lastTransitionTime")),
            history=hist,
            last_probe={k: v for k, v in mapping(s.get("lastProbe")).items() if v is not None},
            outage_held=bool(s.get("outageHeld")),
        )

    def to_status(self, now: datetime) -> dict[str, Any]:
        return {
            "health": self.health,
            "consecutiveSuccesses": self.consecutive_successes,
            "consecutiveFailures": self.consecutive_failures,
            "outageCount": self.outage_count,
            "openIncident": self.open_incident or None,
            "lastTransitionTime": self.last_transition or None,
            # Every key, null when absent: a merge patch removes what it sets to null only.
            "lastProbe": {k: self.last_probe.get(k) for k in LAST_PROBE_KEYS} if self.last_probe else None,
            "outageHeld": self.outage_held or None,
            "probeHistory": [{"start": s, "ok": o, "total": t} for s, o, t in self.history],
            "availability": {
                "lastHour": format_percent(availability(self.history, now, 3600)),
                "lastDay": format_percent(availability(self.history, now, DAY_SECONDS)),
            },
        }


@dataclass(frozen=True)
class Step:
    """What one probe result changed."""

    state: ProbeState
    health_changed: bool = False
    open_incident: bool = False  # failure threshold just reached and no open incident absorbs it
    recovered: bool = False  # success threshold just reached after an outage
    persist: bool = False  # status should be written


@functools.lru_cache(maxsize=1 << 16)  # once per service, not a hash per probe
def write_phase(key: str) -> int:
    """A stable per-service offset into the history bucket, so that thousands of services
    do not all write their steady state in the same second (see `advance`)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % BUCKET_SECONDS


def advance(state: ProbeState, result: ProbeResult, spec: ProbeSpec, phase: int = 0) -> Step:
    now = result.time
    history, _ = _record(state.history, result, now)
    last_probe = {
        "time": iso(now),
        "ok": result.ok,
        "statusCode": result.status_code,
        "latencyMs": result.latency_ms,
        "reason": str(result.failure) if result.failure else None,
        "error": result.error[:512] or None,
    }
    last_probe = {k: v for k, v in last_probe.items() if v is not None}
    if result.ok:
        successes = min(state.consecutive_successes + 1, spec.success_threshold)
        failures = 0
    else:
        successes = 0
        failures = min(state.consecutive_failures + 1, spec.failure_threshold)

    health = state.health
    opened = recovered = False
    outage = state.outage_count
    if result.ok:
        if health in (UNKNOWN, HEALTHY) or successes >= spec.success_threshold:
            recovered = health in (DOWN, DEGRADED)
            health = HEALTHY
    elif failures >= spec.failure_threshold:
        health = DEGRADED if result.slow else DOWN
        if state.health not in (DOWN, DEGRADED) and not state.open_incident:
            opened = True
            outage += 1

    changed = health != state.health
    new = replace(
        state,
        health=health,
        consecutive_successes=successes,
        consecutive_failures=failures,
        outage_count=outage,
        last_transition=iso(now) if changed else state.last_transition,
        history=history,
        last_probe=last_probe,
    )
    # Counters are written while they move toward a threshold; a steady state once
    # per BUCKET_SECONDS, at the service's own phase (the buckets stay wall-clock aligned).
    counters_moved = (successes, failures) != (state.consecutive_successes, state.consecutive_failures)
    return Step(new, health_changed=changed, open_incident=opened, recovered=recovered,
                persist=changed or counters_moved or opened or _write_due(state.last_probe.get("time"), now, phase))


def in_maintenance(step: Step, in_window: bool) -> Step:
    """A maintenance window applied to a probe step. An outage that begins in a window opens no
    incident; it is held in status (`outageHeld`, so a restarted operator still knows) and opens
    one if it outlasts the window. Recovery, to Healthy, lets it go."""
    st = step.state
    outage = st.health in (DOWN, DEGRADED)
    if in_window and (step.open_incident or (st.outage_held and outage)):
        return replace(step, state=replace(st, outage_held=True), open_incident=False,
                       persist=step.persist or not st.outage_held)
    if st.outage_held and outage and not st.open_incident:
        return replace(step, state=replace(st, outage_held=False), open_incident=True, persist=True)
    if st.outage_held and not outage:
        return replace(step, state=replace(st, outage_held=False), persist=True)
    return step


def _write_due(previous: object, now: datetime, phase: int) -> bool:
    before = parse_or_none(previous)
    if before is None:
        return True
    return (int(before.timestamp()) - phase) // BUCKET_SECONDS != (int(now.timestamp()) - phase) // BUCKET_SECONDS


def _record(history: tuple[tuple[int, int, int], ...], result: ProbeResult,
            now: datetime) -> tuple[tuple[tuple[int, int, int], ...], bool]:
    start = int(now.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    cutoff = start - DAY_SECONDS
    kept = [b for b in history if b[0] > cutoff]
    rolled = not kept or kept[-1][0] != start
    if rolled:
        kept.append((start, 0, 0))
    s, ok, total = kept[-1]
    kept[-1] = (s, ok + (1 if result.ok else 0), total + 1)
    return tuple(kept), rolled


def availability(history: Iterable[tuple[int, int, int]], now: datetime, window_seconds: int) -> float | None:
    since = now.timestamp() - window_seconds
    ok = total = 0
    for start, o, t in history:
        if start + BUCKET_SECONDS > since:
            ok += o
            total += t
    return None if total == 0 else 100.0 * ok / total


def format_percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}%"


def incident_name(service_name: str, outage_count: int) -> str:
    """Deterministic per outage: a restarted operator finds, not duplicates, it."""
    suffix = f"-down-{outage_count}"
    base = service_name
    if len(base) + len(suffix) > 253:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        base = base[: 253 - len(suffix) - 9] + "-" + digest
    return base + suffix


def incident_text(service_name: str, result: ProbeResult, spec: ProbeSpec) -> tuple[str, str]:
    title = f"{service_name} is {'slow' if result.slow else 'down'}"
    description = (f"{spec.failure_threshold} consecutive probe failures of {spec.url}; "
                   f"last: {result.error or 'failed'}")
    return title, description
