"""SLA clocks: targets per severity, deadlines, and breach detection.

An incident must be acknowledged within `acknowledge` minutes and resolved
within `resolve` minutes of its creation. Deadlines are written once to
status.sla when the incident opens; breaches are recorded there once each.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .resources import Incident, mapping
from .timeutil import iso, parse, parse_or_none
from .vocabulary import DEFAULT_SEVERITY, STATES, Severity, State

DEFAULTS: dict[str, tuple[int, int]] = {
    Severity.CRITICAL: (5, 60),
    Severity.HIGH: (15, 240),
    Severity.MEDIUM: (60, 1440),
    Severity.LOW: (240, 4320),
}
"""(acknowledge, resolve) minutes per severity when the MonitoredService sets none."""
KINDS = ("acknowledge", "resolve")

# Any state past `open` acknowledges; `resolved` or `closed` resolves.
_ACK_FIELDS = ("acknowledgedAt", "investigatingAt", "mitigatedAt", "resolvedAt", "closedAt")
_RESOLVE_FIELDS = ("resolvedAt", "closedAt")
_ACK_STATES = STATES[STATES.index(State.ACKNOWLEDGED):]
_RESOLVE_STATES = STATES[STATES.index(State.RESOLVED):]


def targets(severity: str | None, override: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """(acknowledge, resolve) minutes: the override's positive integers win, else the severity's defaults.

    An unknown severity gets the defaults of `high` (the CRD's default severity).
    """
    ack, resolve = DEFAULTS.get(severity or DEFAULT_SEVERITY, DEFAULTS[DEFAULT_SEVERITY])
    override = mapping(override)
    return _positive(override.get("acknowledge"), ack), _positive(override.get("resolve"), resolve)


def _positive(value: Any, fallback: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return fallback
    return int(value)


def deadlines(created_at: datetime | str, ack_min: int, resolve_min: int) -> dict[str, Any]:
    """The status.sla fields for an incident created at `created_at`."""
    start = parse(created_at) if isinstance(created_at, str) else created_at
    return {
        "acknowledgeMinutes": ack_min,
        "resolveMinutes": resolve_min,
        "acknowledgeBy": iso(start + timedelta(minutes=ack_min)),
        "resolveBy": iso(start + timedelta(minutes=resolve_min)),
    }


def _met_at(incident: Mapping[str, Any], fields: tuple[str, ...], states: tuple[str, ...],
            now: datetime) -> datetime | None:
    """When the goal was met: the earliest recorded timestamp, else `now` if spec.state already shows it."""
    inc = Incident(incident)
    times = [t for t in (parse_or_none(inc.status.get(f)) for f in fields) if t is not None]
    if times:
        return min(times)
    # The operator may not have stamped a state a person just set: it counts from now.
    if inc.state in states:
        return now
    return None


def _pending(incident: Mapping[str, Any], now: datetime) -> list[tuple[str, datetime, datetime | None]]:
    """(kind, deadline, met_at) for each deadline recorded and not yet marked breached."""
    sla = Incident(incident).sla
    out = []
    for kind, fields, states in (("acknowledge", _ACK_FIELDS, _ACK_STATES),
                                 ("resolve", _RESOLVE_FIELDS, _RESOLVE_STATES)):
        deadline = parse_or_none(sla.get(f"{kind}By"))
        if deadline is None or sla.get(f"{kind}Breached"):
            continue
        out.append((kind, deadline, _met_at(incident, fields, states, now)))
    return out


def evaluate(incident: Mapping[str, Any], now: datetime) -> list[str]:
    """Kinds ('acknowledge', 'resolve') newly breached at `now`, not yet recorded in status.sla.

    A deadline is breached when its goal was met after it, or is still unmet
    once it has passed. Only deadlines recorded in status.sla count.
    """
    breached = []
    for kind, deadline, met in _pending(incident, now):
        if (met is not None and met > deadline) or (met is None and now > deadline):
            breached.append(kind)
    return breached


def breach_fields(kinds: list[str]) -> dict[str, Any]:
    """The status.sla fields recording breaches of `kinds` (merge into status.sla)."""
    fields: dict[str, Any] = {f"{kind}Breached": True for kind in kinds}
    if kinds:
        fields["breached"] = True
    return fields


def next_deadline(incident: Mapping[str, Any], now: datetime) -> datetime | None:
    """The earliest deadline still ticking (goal unmet, not breached), for scheduling a wake-up.

    It may be in the past when a breach has not been recorded yet: `evaluate` it now.
    None when no clock is running.
    """
    ticking = [deadline for _, deadline, met in _pending(incident, now) if met is None]
    return min(ticking) if ticking else None


def time_left(incident: Mapping[str, Any], now: datetime) -> timedelta | None:
    """Time until the next ticking deadline (negative once passed), None when none is ticking."""
    deadline = next_deadline(incident, now)
    return None if deadline is None else deadline - now
