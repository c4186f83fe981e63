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

from paramedic.domain import sla
from paramedic.domain.entries import COMMENTS, RUNBOOK_STEPS, runbook_view
from paramedic.domain.lifecycle import PAUSED_ANNOTATION, STATES, is_active, state_index, was_acknowledged
from paramedic.domain.presentation import format_duration, on_call, sla_left
from paramedic.domain.resources import Incident, Resource, Schedule, Service, mapping
from paramedic.domain.stats import created_at
from paramedic.domain.timeutil import iso, parse_or_none
from paramedic.domain.vocabulary import DEFAULT_SEVERITY, DNS_LABEL, SEVERITIES, State

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
    "30d": timedelta(days=30), "90d": timedelta(days=90), "all": None,
}
SORTS = ("newest", "oldest", "severity", "state", "service", "sla")
PAGE_ROWS = 100
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
    return Incident(inc).spec


def state_of(inc: Mapping[str, Any]) -> str:
    return str(Incident(inc).state)


def _haystack(inc: Mapping[str, Any]) -> str:
    view = Incident(inc)
    spec, meta = view.spec, view.meta
    parts = [meta.get("name"), meta.get("namespace"), spec.get("title"), spec.get("description"),
             spec.get("service"), spec.get("assignee"), spec.get("source")]
    parts += [a.get("alertname") for a in view.alerts if isinstance(a, Mapping)]
    return " ".join(str(p) for p in parts if p).lower()


_SEVERITY_RANK = {str(s): n for n, s in enumerate(SEVERITIES)}
_STATE_RANK = {str(s): n for n, s in enumerate(STATES)}


@dataclass(frozen=True)
class Summary:
    """What the list filters and sorts on, taken from one Incident once (see `summarize`)."""

    inc: Mapping[str, Any]
    namespace: str
    name: str
    state: str
    severity: str
    service: str
    assignee: str
    source: str
    created: datetime | None
    stamp: str
    haystack: str


def summarize(items: Iterable[Mapping[str, Any]]) -> list[Summary]:
    """One Summary per Incident: built once per change of a person's cache, not per request."""
    out = []
    for inc in items:
        spec, meta = _spec(inc), Incident(inc).meta
        out.append(Summary(inc=inc, namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
                           state=str(Incident(inc).state),
                           severity=str(spec.get("severity") or DEFAULT_SEVERITY),
                           service=str(spec.get("service") or ""), assignee=str(spec.get("assignee") or ""),
                           source=str(spec.get("source") or ""), created=created_at(inc),
                           stamp=str(meta.get("creationTimestamp") or ""), haystack=_haystack(inc)))
    return out


def matches(s: Summary, f: Filters, now: datetime, with_state: bool = True) -> bool:
    if with_state and f.state and s.state != f.state:
        return False
    if with_state and f.active and not is_active(s.state):
        return False
    if (f.severity and s.severity != f.severity) or (f.service and s.service != f.service) \
            or (f.assignee and s.assignee != f.assignee) or (f.namespace and s.namespace != f.namespace) \
            or (f.source and s.source != f.source):
        return False
    window = RANGES.get(f.range)
    if window is not None and (s.created is None or s.created < now - window):
        return False
    return not f.q or all(word in s.haystack for word in f.q.lower().split())


def _sla_seconds(inc: Mapping[str, Any], now: datetime) -> float:
    left = sla_left(inc, now).seconds
    return float("inf") if left is None else left


def sort_incidents(items: list[Summary], how: str, now: datetime) -> list[Summary]:
    newest = sorted(items, key=lambda s: (s.stamp, s.name), reverse=True)
    if how == "oldest":
        return newest[::-1]
    if how == "severity":
        return sorted(newest, key=lambda s: _SEVERITY_RANK.get(s.severity, len(_SEVERITY_RANK)))
    if how == "state":
        return sorted(newest, key=lambda s: _STATE_RANK.get(s.state, 99))
    if how == "service":
        return sorted(newest, key=lambda s: s.service)
    if how == "sla":
        return sorted(newest, key=lambda s: _sla_seconds(s.inc, now))
    return newest


@dataclass
class Listing:
    rows: list[dict[str, Any]]
    total: int
    shown: int
    counts: dict[str, int]
    options: dict[str, list[str]] = field(default_factory=dict)


def listing(items: Sequence[Summary], f: Filters, now: datetime) -> Listing:
    """The incidents page: counts by state among those matching every filter but the state,
    the rows matching all of them (sorted, at most PAGE_ROWS), and the filters' choices."""
    base = [s for s in items if matches(s, f, now, with_state=False)]
    counts = Counter(s.state for s in base)
    chosen = [s for s in base if (not f.state or s.state == f.state) and (not f.active or is_active(s.state))]
    ordered = sort_incidents(chosen, f.sort, now)
    return Listing(rows=[row(s.inc, now) for s in ordered[:PAGE_ROWS]], total=len(chosen),
                   shown=min(len(chosen), PAGE_ROWS),
                   counts={str(s): counts.get(s, 0) for s in STATES}, options=options(items))


def options(items: Sequence[Summary]) -> dict[str, list[str]]:
    return {"service": sorted({s.service for s in items} - {""}),
            "assignee": sorted({s.assignee for s in items} - {""}),
            "namespace": sorted({s.namespace for s in items} - {""}),
            "source": sorted({s.source for s in items} - {""})}


def age(inc: Mapping[str, Any], now: datetime) -> str:
    created = created_at(inc)
    return "-" if created is None else format_duration(max(0.0, (now - created).total_seconds()))


def sla_text(inc: Mapping[str, Any], now: datetime) -> tuple[str, bool]:
    """(text, breached) of the next SLA deadline: `12m left`, `breached`, or `-`."""
    left = sla_left(inc, now)
    return left.text(format_duration, " left"), left.breached


def row(inc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    spec, meta = _spec(inc), Incident(inc).meta
    sla_shown, breached = sla_text(inc, now)
    return {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "title": spec.get("title", ""),
            "state": state_of(inc), "severity": spec.get("severity", DEFAULT_SEVERITY),
            "service": spec.get("service", ""), "assignee": spec.get("assignee") or "", "source": spec.get("source", ""),
            "age": age(inc, now), "sla": sla_shown, "breached": breached,
            "version": meta.get("resourceVersion", "")}


def sla_clocks(inc: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Each SLA deadline: kind, minutes, deadline, and time left or breached."""
    status = Incident(inc).status
    deadlines = mapping(status.get("sla"))
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
    has_cause = bool(str(mapping(_spec(inc).get("rca")).get("rootCause") or "").strip())
    out = []
    for state in STATES[state_index(current) + 1:]:
        if state == State.CLOSED and current != State.RESOLVED:
            continue
        blocked = "write the root cause first" if state == State.CLOSED and not has_cause else ""
        out.append({"state": str(state), "label": ACTION_LABELS[state], "blocked": blocked})
    return out


def clocks(inc: Mapping[str, Any]) -> dict[str, str]:
    status = Incident(inc).status
    acknowledged = was_acknowledged(status)
    mtta = "not acknowledged" if acknowledged is False else format_duration(status.get("mttaSeconds"))
    return {"mtta": mtta, "mttr": format_duration(status.get("mttrSeconds"))}


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
    view = Service(svc)
    meta, spec, status = view.meta, view.spec, view.status
    probe = view.last_probe
    rem = view.remediation
    # Each action is an object with exactly one key: restart, rollback, ansible or scale.
    actions = [", ".join(a) if isinstance(a, Mapping) else str(a) for a in rem.get("actions") or []]
    availability = mapping(status.get("availability"))
    return {
        "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
        "paused": str(view.annotations.get(PAUSED_ANNOTATION, "")).lower() == "true",
        "health": status.get("health") or "Unknown", "team": spec.get("team", ""),
        "last_probe": probe.get("time", ""), "probe_ok": probe.get("ok"), "latency": probe.get("latencyMs"),
        "probe_error": probe.get("error", ""), "status_code": probe.get("statusCode"),
        "hour": availability.get("lastHour", "-"), "day": availability.get("lastDay", "-"),
        "open_incident": status.get("openIncident", ""), "has_probe": bool(spec.get("probe")),
        "policy": {"enabled": rem.get("enabled", True), "actions": actions, "maxAttempts": rem.get("maxAttempts"),
                   "maxPerHour": rem.get("maxPerHour"), "cooldownSeconds": rem.get("cooldownSeconds"),
                   "dryRun": bool(rem.get("dryRun"))},
        "maintenance": maintenance_mark(svc),
        "runbook": [{"title": str(s.get("title") or ""), "text": str(s.get("text") or ""),
                     "link": str(s.get("link") or ""), "command": str(s.get("command") or "")}
                    for s in _items(mapping(spec.get("runbook")).get("steps"))],
    }


def oncall_team(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """One OnCallSchedule on the On call page: who now, who next, hand-off, overrides, escalation."""
    view = Schedule(schedule)
    spec, meta = view.spec, view.meta
    team: dict[str, Any] = {"team": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                            "overrides": [], "escalation": [], "error": ""}
    who = on_call(spec, now)
    if who.error:
        team["error"] = who.error
    else:
        handoff = who.handoff
        team.update(now=who.now, override=who.override, handoff=iso(handoff) if handoff else "",
                    handoff_in=format_duration((handoff - now).total_seconds()) if handoff else "", next=who.next)
    for o in spec.get("overrides") or []:
        end = parse_or_none(o.get("end"))
        if end is not None and end > now:
            team["overrides"].append({"start": o.get("start", ""), "end": o.get("end", ""),
                                      "who": o.get("name") or o.get("email", ""), "email": o.get("email", "")})
    steps = sorted(spec.get("escalation") or [], key=lambda s: float(s.get("afterMinutes") or 0))
    team["escalation"] = [{"after": s.get("afterMinutes"), "notify": s.get("notify", "")} for s in steps]
    return team


# --- incident context (status.evidence, status.hints, seen before, people's entries) ------------

def _items(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value or [] if isinstance(v, Mapping)] if isinstance(value, list) else []


def container_facts(c: Mapping[str, Any]) -> list[str]:
    """A container's state in short facts: state and reason, exit codes, restarts, readiness, limit."""
    state = str(c.get("state") or "Unknown")
    facts = [f"{state}: {c['reason']}" if c.get("reason") else state]
    if c.get("state") == "Terminated" and "exitCode" in c:
        facts.append(f"exit code {c['exitCode']}")
    if c.get("restarts"):
        facts.append(f"{c['restarts']} restart(s)")
    if c.get("lastReason") or "lastExitCode" in c:
        facts.append("last run: " + " ".join(p for p in (str(c.get("lastReason") or ""),
                                                          f"exit code {c['lastExitCode']}" if "lastExitCode" in c
                                                          else "") if p))
    facts.append("ready" if c.get("ready") else "not ready")
    if c.get("memoryLimit"):
        facts.append(f"memory limit {c['memoryLimit']}")
    return facts


def evidence_view(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`status.evidence` for the page: each item keyed by its ref (hints cite those), containers
    with their facts in words. None when the operator gathered none."""
    if not evidence:
        return None
    containers = [{**c, "facts": container_facts(c)} for c in _items(evidence.get("containers"))]
    view = {"target": str(evidence.get("target") or ""), "gatheredAt": str(evidence.get("gatheredAt") or ""),
            "truncated": bool(evidence.get("truncated")), "error": str(evidence.get("error") or ""),
            "rollouts": _items(evidence.get("rollouts")), "containers": containers,
            "events": _items(evidence.get("events")), "nodes": _items(evidence.get("nodes")),
            "logs": _items(evidence.get("logs"))}
    return view


def _ref_label(item: Mapping[str, Any]) -> str:
    ref = str(item.get("ref") or "")
    kind = ref.split("/", 1)[0]
    if kind == "rollout":
        return f"revision {item.get('revision')}" + (" (current)" if item.get("current") else "")
    if kind == "pod":
        return f"{item.get('pod')}/{item.get('container')}" if item.get("container") else str(item.get("pod", ""))
    if kind == "event":
        return f"{item.get('reason')} on {item.get('object')}"
    if kind == "node":
        return f"node {item.get('name')}"
    if kind == "log":
        return f"log of {item.get('pod')}/{item.get('container')}"
    return ref


def hints_view(hints: Any, evidence: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """`status.hints` in their rank (most probable first), each with the evidence items it rests
    on: [{rank, rule, summary, action, evidence: [{ref, label, anchor}]}]. A ref the evidence no
    longer holds is still listed, without a link."""
    by_ref: dict[str, Mapping[str, Any]] = {}
    for key in ("rollouts", "containers", "events", "nodes", "logs"):
        for item in _items(mapping(evidence).get(key)):
            by_ref.setdefault(str(item.get("ref") or ""), item)
    out = []
    for n, hint in enumerate(_items(hints), 1):
        cited = []
        for ref in hint.get("evidence") or []:
            found = by_ref.get(str(ref))
            cited.append({"ref": str(ref), "label": _ref_label(found) if found else str(ref),
                          "anchor": anchor(str(ref)) if found else ""})
        out.append({"rank": n, "rule": str(hint.get("rule") or ""), "summary": str(hint.get("summary") or ""),
                    "action": str(hint.get("suggestedAction") or ""), "evidence": cited})
    return out


def anchor(ref: str) -> str:
    """An element id for an evidence ref (ids are plain: no slashes, dots or colons)."""
    return "ev-" + re.sub(r"[^A-Za-z0-9_-]", "-", ref)


def people_entries(inc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Comments and applied runbook steps from the spec, oldest first: [{kind, author, time, text}]."""
    spec = _spec(inc)
    out = [{"kind": "comment", "author": str(c.get("author") or ""), "time": str(c.get("time") or ""),
            "text": str(c.get("text") or "")} for c in _items(spec.get(COMMENTS))]
    for s in _items(spec.get(RUNBOOK_STEPS)):
        title = f"step {s.get('step')} applied" + (f": {s['title']}" if s.get("title") else "")
        out.append({"kind": "runbook-step", "author": str(s.get("author") or ""), "time": str(s.get("time") or ""),
                    "text": title + (f" — {s['note']}" if s.get("note") else "")})

    def when(e: Mapping[str, Any]) -> float:
        t = parse_or_none(e["time"])
        return t.timestamp() if t is not None else 0.0
    return sorted(out, key=when)


def seen_before(inc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`status.seenBefore`: earlier incidents of the service in this namespace, with their causes."""
    view = Incident(inc)
    ns = view.namespace
    return [{"name": str(s.get("name") or ""), "namespace": ns, "title": str(s.get("title") or ""),
             "createdAt": str(s.get("createdAt") or ""), "state": str(s.get("state") or ""),
             "rootCause": str(s.get("rootCause") or ""), "probableCause": str(s.get("probableCause") or "")}
            for s in _items(view.status.get("seenBefore")) if s.get("name")]


def maintenance_mark(obj: Mapping[str, Any]) -> dict[str, str] | None:
    """`status.maintenance` of an Incident (opened during a window) or of a MonitoredService
    (in one now); None when there is none."""
    m = Resource(obj).status.get("maintenance")
    if not isinstance(m, Mapping) or m.get("active") is False or not (m.get("until") or m.get("active")):
        return None
    return {"until": str(m.get("until") or ""), "reason": str(m.get("reason") or ""),
            "source": str(m.get("source") or "")}


def incident_context(inc: Mapping[str, Any], svc: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything the incident page's context shows, from the Incident and its MonitoredService."""
    status = Incident(inc).status
    evidence = status.get("evidence") if isinstance(status.get("evidence"), Mapping) else None
    return {"hints": hints_view(status.get("hints"), evidence), "evidence": evidence_view(evidence),
            "seen_before": seen_before(inc), "maintenance": maintenance_mark(inc), "entries": people_entries(inc),
            "runbook": runbook_view(inc, svc)}
