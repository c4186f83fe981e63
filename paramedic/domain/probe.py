"""Health probing rules: what counts as a failure, thresholds, health, availability.

The prober feeds one `ProbeResult` at a time into `advance`, which returns the
new `ProbeState` and what changed. The state round-trips through the
MonitoredService status, so a restarted operator continues where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    time: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""
    slow: bool = False  # failed only because it was slower than the threshold


def classify(spec: ProbeSpec, now: datetime, *, status_code: int | None, latency_ms: int | None,
             error: str = "") -> ProbeResult:
    """A failure is a wrong status, a transport error (timeout, refused, DNS), or a slow answer."""
    if error:
        return ProbeResult(False, now, status_code, latency_ms, error)
    if status_code != spec.expected_status:
        return ProbeResult(False, now, status_code, latency_ms, f"status {status_code}, expected {spec.expected_status}")
    if spec.latency_threshold_ms is not None and latency_ms is not None and latency_ms > spec.latency_threshold_ms:
        return ProbeResult(False, now, status_code, latency_ms,
                           f"latency {latency_ms} ms over threshold {spec.latency_threshold_ms} ms", slow=True)
    return ProbeResult(True, now, status_code, latency_ms)


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
    def from_status(cls, status: dict[str, Any] | None) -> ProbeState:
        s = status or {}
        hist = tuple((int(b.get("start", 0)), int(b.get("ok", 0)), int(b.get("total", 0)))
                     for b in s.get("probeHistory") or [])
        return cls(
            health=s.get("health") or UNKNOWN,
            consecutive_successes=int(s.get("consecutiveSuccesses") or 0),
            consecutive_failures=int(s.get("consecutiveFailures") or 0),
            outage_count=int(s.get("outageCount") or 0),
            open_incident=s.get("openIncident") or "",
            last_transition=s.get("lastTransitionTime") or "",
            history=hist,
            last_probe=dict(s.get("lastProbe") or {}),
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
            "lastProbe": self.last_probe or None,
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
