"""On-call rotation, overrides and escalation steps of an OnCallSchedule spec.

Rotation: participants take shifts of `rotation.lengthHours` in list order,
the first one from `rotation.start`; before the start the first participant
is on call. Overrides (`start <= t < end`) replace the rotation; when several
cover an instant, the latest-starting one wins, and among equal starts the
one listed last. People are identified by e-mail (case-insensitive).

Functions take the schedule's spec (`resources.Schedule(body).spec`); its lists and objects
are read through `resources.sequence` and `mapping`, so a missing or malformed one is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .resources import mapping, sequence
from .timeutil import parse, parse_or_none

DEFAULT_LENGTH_HOURS = 168
NOTIFY_TARGETS = ("oncall", "next", "admins")


@dataclass(frozen=True)
class Person:
    name: str
    email: str

    @property
    def key(self) -> str:
        """Identity for comparisons: the e-mail, case-insensitive."""
        return self.email.strip().lower()

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email}


@dataclass(frozen=True)
class _Override:
    start: datetime
    end: datetime
    person: Person
    order: int


def _person(entry: Mapping[str, Any]) -> Person:
    email = str(entry.get("email") or "")
    return Person(name=str(entry.get("name") or email), email=email)


def _participants(spec: Mapping[str, Any]) -> list[Person]:
    people = [_person(p) for p in sequence(spec.get("participants")) if p.get("email")]
    if not people:
        raise ValueError("an on-call schedule needs at least one participant with an email")
    return people


def _rotation(spec: Mapping[str, Any]) -> tuple[datetime, timedelta]:
    rotation = mapping(spec.get("rotation"))
    start = rotation.get("start")
    if not start:
        raise ValueError("an on-call schedule needs rotation.start")
    hours = rotation.get("lengthHours") or DEFAULT_LENGTH_HOURS
    if hours <= 0:
        raise ValueError("rotation.lengthHours must be positive")
    return parse(start), timedelta(hours=hours)


def _overrides(spec: Mapping[str, Any]) -> list[_Override]:
    """Well-formed overrides; malformed ones are ignored rather than breaking the whole schedule."""
    out = []
    for order, entry in enumerate(sequence(spec.get("overrides"))):
        start, end = parse_or_none(entry.get("start")), parse_or_none(entry.get("end"))
        if start is None or end is None or end <= start or not entry.get("email"):
            continue
        out.append(_Override(start, end, _person(entry), order))
    return out


def _shift_index(spec: Mapping[str, Any], t: datetime) -> int:
    """Index of the shift covering `t`; 0 before the rotation starts."""
    start, length = _rotation(spec)
    return max(0, (t - start) // length)


def rotation_at(spec: Mapping[str, Any], t: datetime) -> Person:
    """Who the rotation alone puts on call at `t` (overrides ignored)."""
    people = _participants(spec)
    return people[_shift_index(spec, t) % len(people)]


def override_at(spec: Mapping[str, Any], t: datetime) -> Person | None:
    """The person of the winning override covering `t`, if any."""
    covering = [o for o in _overrides(spec) if o.start <= t < o.end]
    if not covering:
        return None
    return max(covering, key=lambda o: (o.start, o.order)).person


def on_call_at(spec: Mapping[str, Any], t: datetime) -> Person:
    """Who is on call at `t`: the winning override, else the rotation."""
    return override_at(spec, t) or rotation_at(spec, t)


def _next_rotation_change(spec: Mapping[str, Any], t: datetime) -> datetime | None:
    """First shift boundary after `t` where the rotation's person (by e-mail) changes."""
    people = _participants(spec)
    start, length = _rotation(spec)
    k = _shift_index(spec, t)
    current = people[k % len(people)].key
    for step in range(1, len(people) + 1):
        if people[(k + step) % len(people)].key != current:
            return start + (k + step) * length
    return None


def next_handoff(spec: Mapping[str, Any], t: datetime) -> datetime | None:
    """The next instant after `t` when the on-call person changes; None if it never does.

    The person can change only at override starts and ends, and at shift
    boundaries where the rotation's person changes while no override covers.
    """
    current = on_call_at(spec, t).key
    points = sorted({p for o in _overrides(spec) for p in (o.start, o.end) if p > t})
    x = t
    for point in points + [None]:
        if override_at(spec, x) is None:
            change = _next_rotation_change(spec, x)
            if change is not None and (point is None or change < point):
                return change
        if point is None:
            return None
        x = point
        if on_call_at(spec, x).key != current:
            return x
    return None


@dataclass(frozen=True)
class Shift:
    """Who is on call at a time (`override`: by an override), when that changes, and who is next
    (None when nothing changes)."""

    now: Person
    override: bool
    handoff: datetime | None
    next: Person | None


def shift_at(spec: Mapping[str, Any], t: datetime) -> Shift:
    """The schedule at `t`, as its status and people's views show it (ValueError: invalid schedule)."""
    handoff = next_handoff(spec, t)
    return Shift(now=on_call_at(spec, t), override=override_at(spec, t) is not None, handoff=handoff,
                 next=on_call_at(spec, handoff) if handoff else None)


def next_in_rotation(spec: Mapping[str, Any], t: datetime) -> Person:
    """Who comes after the current rotation person: the next participant who is neither
    the rotation's person nor whoever is on call now (so escalating reaches someone new).
    With nobody else in the rotation, the next participant in order."""
    people = _participants(spec)
    k = _shift_index(spec, t)
    skip = {people[k % len(people)].key, on_call_at(spec, t).key}
    for step in range(1, len(people) + 1):
        candidate = people[(k + step) % len(people)]
        if candidate.key not in skip:
            return candidate
    return people[(k + 1) % len(people)]


def _ordered_steps(steps: list[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """Steps by afterMinutes (stable): levels count in this order, so none is ever skipped."""
    return sorted(steps or [], key=lambda s: float(s.get("afterMinutes") or 0))


def _step_time(step: Mapping[str, Any], opened_at: datetime) -> datetime:
    return opened_at + timedelta(minutes=float(step.get("afterMinutes") or 0))


def escalation_due(steps: list[Mapping[str, Any]] | None, opened_at: datetime, level_done: int,
                   now: datetime) -> list[tuple[int, Mapping[str, Any]]]:
    """(level, step) for each step due at `now` and not yet taken.

    Levels index the steps ordered by afterMinutes; `level_done` is how many
    were taken already (status.escalationLevel), so each step is due once.
    After taking them, record escalationLevel = last level + 1.
    """
    due = []
    for level, step in enumerate(_ordered_steps(steps)):
        if level >= level_done and _step_time(step, opened_at) <= now:
            due.append((level, step))
    return due


def next_escalation_at(steps: list[Mapping[str, Any]] | None, opened_at: datetime,
                       level_done: int) -> datetime | None:
    """When the next untaken step falls due; None when all were taken."""
    ordered = _ordered_steps(steps)
    level = max(0, level_done)
    return _step_time(ordered[level], opened_at) if level < len(ordered) else None


def escalation_recipients(step: Mapping[str, Any], spec: Mapping[str, Any], t: datetime,
                          admins: list[str] | None) -> list[str]:
    """E-mail addresses a step notifies: `oncall`, `next` (in rotation), `admins`, or one address."""
    target = str(step.get("notify") or "").strip()
    if target == "oncall":
        found = [on_call_at(spec, t).email]
    elif target == "next":
        found = [next_in_rotation(spec, t).email]
    elif target == "admins":
        found = list(admins or [])
    elif "@" in target:
        found = [target]
    else:
        found = []
    return _unique(found)


def _unique(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for address in addresses:
        key = address.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(address.strip())
    return out

