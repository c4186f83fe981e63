"""Opening, people's state changes, assignment, and the resolutions Paramedic decides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import lifecycle, maintenance, oncall, sla
from .. import notify_render as nr
from ..alert_records import ACTOR as RECEIVER_ACTOR
from ..resources import mapping, sequence, text
from ..timeutil import iso, parse_or_none
from ..vocabulary import State
from .base import NOTHING, Draft, Event, Inputs, Part

PROBER_ACTOR = "paramedic/prober"
"""Who a probe recovery's resolution is written by: the rule's source, as the timeline has always named it."""
STATE_EVENTS = {State.RESOLVED: "resolved", State.CLOSED: "closed"}
"""States whose reaching is announced, and the notification event for each."""
ORIGINS = {"probe": "health probe", "alertmanager": "Alertmanager", "grafana": "Grafana alerting",
           "api": "alert API", "manual": "a person"}


def open_incident(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """The first pass (no `observedState` yet): createdAt, SLA deadlines, team, the on-call's
    assignment (a spec write), maintenance, the Ready condition and the "opened" announcement.
    The receiver may have recorded alerts (and createdAt) already, or not yet: nothing here needs them."""
    inc, svc, now, team = inp.incident, inp.service_body, inp.now, inp.team
    d = Draft(status, now, inp.settings.timeline_limit)
    created = d.status.get("createdAt") or inc.created or iso(now)
    override = inp.service.spec.get("sla") if inp.service is not None else None
    ack_min, res_min = sla.targets(inc.spec.get("severity"), override)
    d.set(createdAt=created, team=team or None, observedState=State.OPEN, escalationLevel=0,
          sla=sla.deadlines(parse_or_none(created) or now, ack_min, res_min))
    source = inc.source
    origin = ORIGINS.get(source, source)
    severity = inc.severity
    d.log("opened", f"{severity} incident opened by {origin}: {inc.title}")
    until = maintenance.active_until(svc, now)
    if until is not None and inp.service is not None:
        window = mapping(inp.service.status.get("maintenance"))
        where = text(window.get("source"), "service")
        reason = text(window.get("reason"))
        d.set(maintenance={"until": iso(until), "reason": reason, "source": where})
        d.log("in-maintenance", f"opened during a maintenance window ({where}) until {iso(until)}"
              + (f": {reason}" if reason else "") + "; no one is paged and remediation waits")
    d.events.append(Event("opened", "IncidentOpened", f"{severity}: {inc.title}", "Warning"))
    # Every incident is counted here, once, whoever created it (the receiver, the prober, a
    # person): the first pass is decided once, and its counts apply once its write landed.
    d.count("incidents_created", severity, source)
    if not inc.managed:
        d.log("unmanaged", "unmanaged incident (spec.managed: false): recorded for people, no remediation")
    assignee = inp.spec_assignee
    spec: dict[str, Any] = {}
    if not assignee and inp.schedule is not None:
        person = oncall.on_call_at(mapping(inp.schedule.get("spec")), now)
        assignee = spec["assignee"] = person.email
        d.log("assigned", f"assigned to {person.name or person.email} <{person.email}>, on call for {team}")
    elif assignee and not d.status.get("assignee"):
        d.log("assigned", f"assigned to {assignee}")
    elif not assignee:
        d.log("unassigned", f"no OnCallSchedule {team!r} in {inc.namespace}: unassigned"
              if team else "the service names no team: unassigned")
    d.set(assignee=assignee or None)
    d.set(conditions=lifecycle.set_condition(d.status.get("conditions"), "Ready", "True", "Tracking",
                                             "incident is tracked by the operator", now=now,
                                             generation=inc.meta.get("generation")))
    detail = text(inc.spec.get("description")) or inc.title
    d.announce(nr.notification_key("opened"), "opened", detail, inp.recipients("opened", assignee))
    return d.part(spec=spec)


def state_changes(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """A state change seen in spec (people's, or one Paramedic wrote in an earlier pass): its
    timestamps, MTTA/MTTR, timeline line, Event and announcement."""
    inc, now = inp.incident, inp.now
    state = inc.state
    seen = text(status.get("observedState"), State.OPEN)
    if state == seen:
        return NOTHING
    changed_at = lifecycle.changed_at(inp.viewed(status), now)
    effects = lifecycle.state_effects(seen, state, status, changed_at)
    if not effects:
        return NOTHING
    d = Draft(status, now, inp.settings.timeline_limit)
    d.set(**effects)
    actor = text(inc.annotations.get(lifecycle.ACTOR_ANNOTATION), "kubectl")
    why = text(inc.annotations.get(lifecycle.REASON_ANNOTATION))
    d.log("state", f"{seen} → {state}" + (f": {why}" if why else ""), actor=actor)
    note = f"{seen} → {state} by {actor}" + (f": {why}" if why else "")
    d.events.append(Event(str(state), f"Incident{state.capitalize()}", note))
    if "mttaSeconds" in effects:
        d.count("mtta", inc.severity, value=effects["mttaSeconds"])
    if "mttrSeconds" in effects:
        d.count("mttr", inc.severity, value=effects["mttrSeconds"])
    event = STATE_EVENTS.get(state)
    if event:
        d.announce(nr.notification_key(event), event, f"{seen} → {state} by {actor}",
                   inp.recipients(event, inp.spec_assignee))
    return d.part(forget=not lifecycle.is_active(state))


def assignment(inp: Inputs, status: Mapping[str, Any], assigned: str) -> Part:
    """A person's (re)assignment in spec, or `assigned` (the on-call this pass assigned), into status."""
    wanted = inp.spec_assignee or assigned
    known = text(status.get("assignee"))
    if not wanted or wanted == known:
        return NOTHING
    d = Draft(status, inp.now, inp.settings.timeline_limit)
    actor = text(inp.incident.annotations.get(lifecycle.ACTOR_ANNOTATION), "kubectl")
    d.log("assigned", f"reassigned to {wanted}" + (f" (was {known})" if known else ""), actor=actor)
    d.set(assignee=wanted)
    return d.part()


def resolution(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """The resolutions Paramedic decides from recorded facts, written to spec.state after the status
    (the next pass records the move like any other): every alert in `status.alerts` resolved (the
    receiver records them; an incident whose alerts are not recorded yet has none, so is not
    resolved), or a probe-opened incident's probe healthy again since it opened. Either only while
    the service's `autoResolve` allows (default on; an incident without a service: on)."""
    inc, svc = inp.incident, inp.service
    if not inc.active or (svc is not None and not svc.auto_resolve):
        return NOTHING
    alerts = [a for a in sequence(status.get("alerts")) if isinstance(a, Mapping)]
    if alerts and all(a.get("status") == "resolved" for a in alerts):
        return Part(spec={"state": State.RESOLVED}, spec_by=(RECEIVER_ACTOR, "all alerts resolved"))
    if inc.source == "probe" and svc is not None and svc.probe and probe_recovered(inp, status):
        return Part(spec={"state": State.RESOLVED}, spec_by=(PROBER_ACTOR, "probe recovered"))
    return NOTHING


def probe_recovered(inp: Inputs, status: Mapping[str, Any]) -> bool:
    """Whether the service's probe is healthy by a probe made since the incident opened."""
    health, last = inp.effects.probe or ("Unknown", "")
    opened = parse_or_none(status.get("createdAt")) or parse_or_none(inp.incident.created)
    probed = parse_or_none(last)
    return health == "Healthy" and probed is not None and (opened is None or probed >= opened)
