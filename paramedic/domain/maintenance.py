"""Maintenance windows: when a service's outages are expected.

Windows are set on a MonitoredService (`spec.maintenance.windows`) or on its namespace (the
`paramedic.dev/maintenance` annotation: a JSON list of the same objects). Each is one-off
(`start`, `end`) or recurring (`schedule`, a five-field cron expression in UTC, and
`durationMinutes`). During one, probe incidents do not open, remediation does not run and no
one is paged; alerts are still recorded, their incidents marked as in maintenance.

Pure: `state(...)` says whether a window is active at `now`, until when, and when to look again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from croniter import croniter

from .resources import Resource, Service
from .timeutil import iso, parse_or_none

NAMESPACE_ANNOTATION = "paramedic.dev/maintenance"


@dataclass(frozen=True)
class State:
    active: bool
    until: datetime | None = None
    reason: str = ""
    source: str = ""
    """'service' or 'namespace': where the active window is set."""
    next_change: datetime | None = None
    """When the answer may change (the active window's end, or the next start)."""
    errors: tuple[str, ...] = ()

    def status(self) -> dict[str, Any]:
        """MonitoredService `status.maintenance`."""
        return {"active": self.active, "until": iso(self.until) if self.active and self.until else None,
                "reason": self.reason if self.active else None, "source": self.source if self.active else None,
                "error": "; ".join(self.errors) or None}


def namespace_windows(namespace: Mapping[str, Any] | None) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The windows of a Namespace's annotation, and why any could not be read."""
    raw = Resource(namespace or {}).annotations.get(NAMESPACE_ANNOTATION)
    if not raw:
        return [], []
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return [], [f"namespace annotation {NAMESPACE_ANNOTATION} is not JSON: {exc}"]
    items = value if isinstance(value, list) else [value]
    return [w for w in items if isinstance(w, Mapping)], []


def _span(window: Mapping[str, Any], now: datetime) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(start, end) of the window occurrence around `now` (or the next one), and the next start."""
    schedule = window.get("schedule")
    if schedule:
        if not isinstance(schedule, str) or not croniter.is_valid(schedule):
            raise ValueError(f"schedule {schedule!r} is not a five-field cron expression")
        duration = timedelta(minutes=int(window.get("durationMinutes") or 0))
        if duration <= timedelta(0):
            raise ValueError(f"schedule {schedule!r} needs durationMinutes of 1 or more")
        # A run starting exactly now counts: look back from just after now.
        start = croniter(schedule, now + timedelta(seconds=1)).get_prev(datetime)
        upcoming = croniter(schedule, now).get_next(datetime)
        return start, start + duration, upcoming
    start, end = parse_or_none(window.get("start")), parse_or_none(window.get("end"))
    if start is None or end is None:
        raise ValueError("a window needs start and end (date-times), or schedule and durationMinutes")
    return start, end, start if start > now else None


def state(service_windows: Iterable[Mapping[str, Any]], namespace_windows: Iterable[Mapping[str, Any]],
          now: datetime, errors: Iterable[str] = ()) -> State:
    """Whether a window is active at `now` (the one lasting longest wins) and when to look again."""
    active: list[tuple[datetime, str, str]] = []
    changes: list[datetime] = []
    problems = list(errors)
    for source, windows in (("service", service_windows), ("namespace", namespace_windows)):
        for n, window in enumerate(windows, 1):
            try:
                start, end, upcoming = _span(window, now)
            except (ValueError, TypeError) as exc:
                problems.append(f"{source} window {n}: {exc}")
                continue
            if start is not None and end is not None and start <= now < end:
                active.append((end, str(window.get("reason") or ""), source))
                changes.append(end)
            if upcoming is not None and upcoming > now:
                changes.append(upcoming)
    if not active:
        return State(False, next_change=min(changes, default=None), errors=tuple(problems))
    end, reason, source = max(active, key=lambda a: a[0])
    return State(True, end, reason, source, min(changes), tuple(problems))


def active_until(service: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """The end of the service's active window as its status records it (None: not in maintenance)."""
    recorded = Service(service or {}).maintenance
    until = parse_or_none(recorded.get("until"))
    return until if recorded.get("active") and until is not None and until > now else None


def window_for(start: datetime, length: timedelta, reason: str, author: str) -> dict[str, Any]:
    """A one-off window as `kubectl paramedic maintain` adds it."""
    return {"start": iso(start), "end": iso(start + length), "reason": reason, "author": author}
