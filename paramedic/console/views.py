"""What the pages show, computed from CR bodies: filters, sorting, counts and rows.

No I/O here: the routes (app.py) fetch with the person's client and hand the objects over.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paramedic.domain import oncall, sla
from paramedic.domain.lifecycle import PAUSED_ANNOTATION, STATES, is_active, state_index, was_acknowledged
from paramedic.domain.stats import created_at, format_duration
from paramedic.domain.timeutil import iso, parse_or_none
from paramedic.domain.vocabulary import DEFAULT_SEVERITY, DNS_LABEL, SEVERITIES, State

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
    "30d": timedelta(days=30), "90d": timedelta(days=90), "all": None,
}
SORTS = ("newest", "oldest", "severity", "state", "service", "sla")
PAGE_ROWS = 200
"""Rows rendered at most (the counts cover every match): a page of 5,000 rows helps nobody."""

ACTION_LABELS = {State.ACKNOWLEDGED: "Acknowledge", State.INVESTIGATING: "Investigate",
                 State.MITIGATED: "Mitigate", State.RESOLVED: "Resolve", State.CLOSED: "Close"}


@dataclass(frozen=True)
class Filters:
    state: str = ""
    severity: str = ""
    service: str = ""
    assignee: str = ""
    namespace: str = ""
    source: str = ""
    range: str = "all"
    q: str = ""
    sort: str = "newest"
    active: bool = False

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Filters:
        def one(name: str, default: str = "") -> str:
            return str(args.get(name) or default).strip()[:200]
        rng = one("range", "all")
        sort = one("sort", "newest")
        return cls(state=one("state"), severity=one("severity"), service=one("service"), assignee=one("assignee"),
                   namespace=one("namespace"), source=one("source"), range=rng if rng in RANGES else "all",
                   q=one("q"), sort=sort if sort in SORTS else "newest", active=one("active") in ("1", "on", "true"))


def _spec(inc: Mapping[str, Any]) -> Mapping[str, Any]:
    return inc.get("spec") or {}


def state_of(inc: Mapping[str, Any]) -> str:
    return str(_spec(inc).get("state") or State.OPEN)


def _haystack(inc: Mapping[str, Any]) -> str:
    spec, meta = _spec(inc), inc.get("metadata") or {}
    parts = [meta.get("name"), meta.get("namespace"), spec.get("title"), spec.get("description"),
             spec.get("service"), spec.get("assignee"), spec.get("source")]
    parts += [a.get("alertname") for a in (inc.get("status") or {}).get("alerts") or []]
    return " ".join(str(p) for p in parts if p).lower()


def matches(inc: Mapping[str, Any], f: Filters, now: datetime, with_state: bool = True) -> bool:
    spec, meta = _spec(inc), inc.get("metadata") or {}
    if with_state and f.state and state_of(inc) != f.state:
        return False
    if with_state and f.active and not is_active(state_of(inc)):
        return False
    checks = ((f.severity, spec.get("severity", DEFAULT_SEVERITY)), (f.service, spec.get("service")),
              (f.assignee, spec.get("assignee")), (f.namespace, meta.get("namespace")), (f.source, spec.get("source")))
    if any(want and str(have or "") != want for want, have in checks):
        return False
    window = RANGES.get(f.range)
    if window is not None:
        created = created_at(inc)
        if created is None or created < now - window:
            return False
    if f.q:
        hay = _haystack(inc)
        if not all(word in hay for word in f.q.lower().split()):
            return False
    return True


def _sla_seconds(inc: Mapping[str, Any], now: datetime) -> float:
    left = sla.time_left(inc, now) if is_active(state_of(inc)) else None
    return float("inf") if left is None else left.total_seconds()


def sort_incidents(items: list[Mapping[str, Any]], how: str, now: datetime) -> list[Mapping[str, Any]]:
    def created(inc: Mapping[str, Any]) -> str:
        return str((inc.get("metadata") or {}).get("creationTimestamp") or "")
    newest = sorted(items, key=lambda i: (created(i), (i.get("metadata") or {}).get("name", "")), reverse=True)
    if how == "oldest":
        return newest[::-1]
    if how == "severity":
        rank = {s: n for n, s in enumerate(SEVERITIES)}
        return sorted(newest, key=lambda i: rank.get(_spec(i).get("severity", DEFAULT_SEVERITY), len(rank)))
    if how == "state":
        return sorted(newest, key=lambda i: state_index(state_of(i)) if state_of(i) in STATES else 99)
    if how == "service":
        return sorted(newest, key=lambda i: str(_spec(i).get("service") or ""))
    if how == "sla":
        return sorted(newest, key=lambda i: _sla_seconds(i, now))
    return newest


@dataclass
class Listing:
    rows: list[dict[str, Any]]
    total: int
    shown: int
    counts: dict[str, int]
    options: dict[str, list[str]] = field(default_factory=dict)


def listing(items: Sequence[Mapping[str, Any]], f: Filters, now: datetime) -> Listing:
    """The incidents page: counts by state among those matching every filter but the state,
    the rows matching all of them (sorted, at most PAGE_ROWS), and the filters' choices."""
    base = [i for i in items if matches(i, f, now, with_state=False)]
    counts = Counter(state_of(i) for i in base)
    chosen = [i for i in base if matches(i, f, now)]
    ordered = sort_incidents(chosen, f.sort, now)
    return Listing(rows=[row(i, now) for i in ordered[:PAGE_ROWS]], total=len(chosen),
                   shown=min(len(chosen), PAGE_ROWS),
                   counts={str(s): counts.get(s, 0) for s in STATES}, options=options(items))


def options(items: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {"service": set(), "assignee": set(), "namespace": set(), "source": set()}
    for inc in items:
        spec, meta = _spec(inc), inc.get("metadata") or {}
        for key, value in (("service", spec.get("service")), ("assignee", spec.get("assignee")),
                           ("namespace", meta.get("namespace")), ("source", spec.get("source"))):
            if value:
                seen[key].add(str(value))
    return {k: sorted(v) for k, v in seen.items()}


def age(inc: Mapping[str, Any], now: datetime) -> str:
    created = created_at(inc)
    return "-" if created is None else format_duration(max(0.0, (now - created).total_seconds()))


def sla_text(inc: Mapping[str, Any], now: datetime) -> tuple[str, bool]:
    """(text, breached) of the next SLA deadline: `12m left`, `breached`, or `-`."""
    breached = bool(((inc.get("status") or {}).get("sla") or {}).get("breached"))
    if not is_active(state_of(inc)):
        return ("breached" if breached else "-", breached)
    left = sla.time_left(inc, now)
    if left is None:
        return ("breached" if breached else "-", breached)
    if left.total_seconds() <= 0:
        return "breached", True
    return f"{format_duration(left.total_seconds())} left", breached


def row(inc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    spec, meta = _spec(inc), inc.get("metadata") or {}
    sla_shown, breached = sla_text(inc, now)
    return {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "title": spec.get("title", ""),
            "state": state_of(inc), "severity": spec.get("severity", DEFAULT_SEVERITY),
            "service": spec.get("service", ""), "assignee": spec.get("assignee") or "", "source": spec.get("source", ""),
            "age": age(inc, now), "sla": sla_shown, "breached": breached,
            "version": meta.get("resourceVersion", "")}


def sla_clocks(inc: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Each SLA deadline: kind, minutes, deadline, and time left or breached."""
    status = inc.get("status") or {}
    deadlines = status.get("sla") or {}
    out = []
    for kind in sla.KINDS:
        by = deadlines.get(f"{kind}By")
        if not by:
            continue
        breached = bool(deadlines.get(f"{kind}Breached"))
        met = _met(status, kind)
        if breached:
            text = "breached"
        elif met:
            text = "met"
        else:
            deadline = parse_or_none(by)
            left = None if deadline is None else (deadline - now).total_seconds()
            text = "-" if left is None else ("breached" if left <= 0 else f"{format_duration(left)} left")
        out.append({"kind": kind, "minutes": deadlines.get(f"{kind}Minutes"), "by": by, "text": text,
                    "breached": text == "breached"})
    return out


def _met(status: Mapping[str, Any], kind: str) -> bool:
    fields = ("acknowledgedAt", "investigatingAt", "mitigatedAt", "resolvedAt", "closedAt") if kind == "acknowledge" \
        else ("resolvedAt", "closedAt")
    return any(status.get(f) for f in fields)


def moves(inc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The state changes the lifecycle allows now, as the API server's CEL rules do: forward
    only; closing only from resolved, and only with a root cause (else offered as blocked,
    saying why): [{state, label, blocked}]."""
    current = state_of(inc)
    if current not in STATES:
        return []
    has_cause = bool(str((_spec(inc).get("rca") or {}).get("rootCause") or "").strip())
    out = []
    for state in STATES[state_index(current) + 1:]:
        if state == State.CLOSED and current != State.RESOLVED:
            continue
        blocked = "write the root cause first" if state == State.CLOSED and not has_cause else ""
        out.append({"state": str(state), "label": ACTION_LABELS[state], "blocked": blocked})
    return out


def clocks(inc: Mapping[str, Any]) -> dict[str, str]:
    status = inc.get("status") or {}
    acknowledged = was_acknowledged(status)
    mtta = "not acknowledged" if acknowledged is False else format_duration(status.get("mttaSeconds"))
    return {"mtta": mtta, "mttr": format_duration(status.get("mttrSeconds"))}


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
"""As the CRD's pattern for assignees (and `kubectl paramedic assign`)."""


def is_namespace(name: str) -> bool:
    return bool(DNS_LABEL.match(name))


def filename(namespace: str, name: str) -> str:
    """A download's file name: only characters safe in a header and on any file system."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"postmortem-{namespace}-{name}")


def created_within(inc: Mapping[str, Any], now: datetime, days: int) -> bool:
    created = created_at(inc)
    return created is not None and created >= now - timedelta(days=days)


def service_row(svc: Mapping[str, Any]) -> dict[str, Any]:
    """One MonitoredService on the Services page."""
    meta, spec, status = svc.get("metadata") or {}, svc.get("spec") or {}, svc.get("status") or {}
    probe = status.get("lastProbe") or {}
    rem = spec.get("remediation") or {}
    # Each action is an object with exactly one key: restart, rollback, ansible or scale.
    actions = [", ".join(a) if isinstance(a, Mapping) else str(a) for a in rem.get("actions") or []]
    availability = status.get("availability") or {}
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "paused": str((meta.get("annotations") or {}).get(PAUSED_ANNOTATION, "")).lower() == "true",
        "health": status.get("health") or "Unknown", "team": spec.get("team", ""),
        "last_probe": probe.get("time", ""), "probe_ok": probe.get("ok"), "latency": probe.get("latencyMs"),
        "probe_error": probe.get("error", ""), "status_code": probe.get("statusCode"),
        "hour": availability.get("lastHour", "-"), "day": availability.get("lastDay", "-"),
        "open_incident": status.get("openIncident", ""), "has_probe": bool(spec.get("probe")),
        "policy": {"enabled": rem.get("enabled", True), "actions": actions, "maxAttempts": rem.get("maxAttempts"),
                   "maxPerHour": rem.get("maxPerHour"), "cooldownSeconds": rem.get("cooldownSeconds"),
                   "dryRun": bool(rem.get("dryRun"))},
    }


def oncall_team(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """One OnCallSchedule on the On call page: who now, who next, hand-off, overrides, escalation."""
    spec, meta = schedule.get("spec") or {}, schedule.get("metadata") or {}
    team: dict[str, Any] = {"team": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                            "overrides": [], "escalation": [], "error": ""}
    try:
        team["now"] = oncall.on_call_at(spec, now).as_dict()
        team["override"] = oncall.override_at(spec, now) is not None
        handoff = oncall.next_handoff(spec, now)
        team["handoff"] = iso(handoff) if handoff else ""
        team["handoff_in"] = format_duration((handoff - now).total_seconds()) if handoff else ""
        team["next"] = oncall.on_call_at(spec, handoff).as_dict() if handoff else None
    except ValueError as exc:
        team["error"] = str(exc)
    for o in spec.get("overrides") or []:
        end = parse_or_none(o.get("end"))
        if end is not None and end > now:
            team["overrides"].append({"start": o.get("start", ""), "end": o.get("end", ""),
                                      "who": o.get("name") or o.get("email", ""), "email": o.get("email", "")})
    steps = sorted(spec.get("escalation") or [], key=lambda s: float(s.get("afterMinutes") or 0))
    team["escalation"] = [{"after": s.get("afterMinutes"), "notify": s.get("notify", "")} for s in steps]
    return team
