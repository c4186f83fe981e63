"""How people are shown durations, SLA time left and who is on call: one way, for the CLI,
the console and the rendered reports. Pure: the current time is an argument.

Two duration styles exist on purpose: `format_duration` (`12m 5s`, `3h 20m`) for pages,
reports and tables, and `short_age` (`5m30s`, `2d4h`) where kubectl's own AGE column sets the
reader's expectation (`kubectl paramedic list`, `oncall`, `show`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import oncall, sla
from .resources import Incident, mapping


def format_duration(seconds: float | None) -> str:
    """Human duration: `45s`, `12m 5s`, `3h 20m`, `2d 4h`; `-` for None."""
    if seconds is None:
        return "-"
    total = int(round(seconds))
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [f"{days}d", f"{hours}h" if hours else ""]
    elif hours:
        parts = [f"{hours}h", f"{minutes}m" if minutes else ""]
    elif minutes:
        parts = [f"{minutes}m", f"{secs}s" if secs else ""]
    else:
        parts = [f"{secs}s"]
    return sign + " ".join(p for p in parts if p)


def short_age(seconds: float) -> str:
    """kubectl's short duration (`45s`, `5m30s`, `3h`, `2d4h`, `1y30d`)."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y = d // 365
    if h < 24 * 365 * 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def seconds_and_words(value: Any, fmt: Callable[[float], str] = format_duration) -> str | None:
    """A recorded number of seconds (MTTA, MTTR) as `12m 5s (725 s)`; None when not recorded."""
    return None if value is None else f"{fmt(value)} ({value} s)"


@dataclass(frozen=True, slots=True)
class SlaLeft:
    """An incident's next SLA deadline as people see it.

    `seconds`: time to it while the incident is active and a deadline runs (negative once
    passed), else None. `breached`: status says so, or the deadline has passed."""

    active: bool
    seconds: float | None
    breached: bool

    def text(self, fmt: Callable[[float], str] = format_duration, suffix: str = "") -> str:
        """`<fmt(left)><suffix>` while time is left, `breached` once any deadline was missed, else `-`."""
        if self.seconds is not None and self.seconds > 0:
            return fmt(self.seconds) + suffix
        return "breached" if self.breached else "-"


def sla_left(body: Mapping[str, Any], now: datetime) -> SlaLeft:
    inc = Incident(body)
    flagged = bool(mapping(inc.status.get("sla")).get("breached"))
    if not inc.active:
        return SlaLeft(False, None, flagged)
    left = sla.time_left(body, now)
    if left is None:
        return SlaLeft(True, None, flagged)
    seconds = left.total_seconds()
    return SlaLeft(True, seconds, flagged or seconds <= 0)


@dataclass(frozen=True, slots=True)
class OnCall:
    """Who is on call for one OnCallSchedule now, and who is next (`error` for an invalid schedule)."""

    now: dict[str, Any] | None = None
    override: bool = False
    handoff: datetime | None = None
    next: dict[str, Any] | None = None
    error: str = ""


def on_call(spec: Mapping[str, Any], now: datetime) -> OnCall:
    try:
        shift = oncall.shift_at(spec, now)
        return OnCall(now=shift.now.as_dict(), override=shift.override, handoff=shift.handoff,
                      next=shift.next.as_dict() if shift.next else None)
    except ValueError as exc:
        return OnCall(error=str(exc))
