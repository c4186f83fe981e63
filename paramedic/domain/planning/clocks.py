"""The incident's clocks: SLA breaches, escalation steps, retention."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .. import notify_render as nr
from .. import oncall, sla
from ..resources import Schedule, mapping, sequence, text
from ..timeutil import iso, parse_or_none
from ..vocabulary import State
from .base import NOTHING, Draft, Inputs, Part


def sla_breaches(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """Each SLA target newly missed (recorded, counted, announced), and the next deadline's wake-up."""
    now = inp.now
    d = Draft(status, now, inp.settings.timeline_limit)
    for kind in sla.evaluate(inp.viewed(d.status), now):
        d.set(sla={**mapping(d.status.get("sla")), **sla.breach_fields([kind])})
        d.count("sla_breaches", kind)
        target = mapping(d.status.get("sla")).get(f"{kind}Minutes")
        d.log("sla-breach", f"SLA breached: not {kind}d within {target} minutes")
        d.announce(nr.notification_key("sla_breach", kind), "sla_breach", f"not {kind}d within {target} minutes",
                   inp.recipients("sla_breach", inp.spec_assignee))
    d.wake_at(sla.next_deadline(inp.viewed(d.status), now))
    return d.part()


def escalation(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """The schedule's escalation steps due while the incident stays open (unacknowledged)."""
    if inp.incident.state != State.OPEN or inp.schedule is None:
        return NOTHING
    now, schedule = inp.now, Schedule(inp.schedule)
    d = Draft(status, now, inp.settings.timeline_limit)
    steps = list(schedule.escalation)
    opened = parse_or_none(d.status.get("createdAt")) or now
    level = int(d.status.get("escalationLevel") or 0)
    team = text(d.status.get("team")) or schedule.name
    for lvl, step in oncall.escalation_due(steps, opened, level, now):
        recipients = oncall.escalation_recipients(step, schedule.spec, now, inp.admins())
        history = list(sequence(d.status.get("escalations")))
        history.append({"level": lvl + 1, "time": iso(now), "notify": step.get("notify"), "recipients": recipients})
        d.set(escalationLevel=lvl + 1, escalations=history)
        d.count("escalations", team)
        d.log("escalated", f"escalation step {lvl + 1} ({step.get('notify')}, after "
              f"{step.get('afterMinutes')} min unacknowledged): {', '.join(recipients) or 'nobody to notify'}")
        d.announce(nr.notification_key("escalated", str(lvl + 1)), "escalated",
                   f"step {lvl + 1}: unacknowledged for {step.get('afterMinutes')} minutes", recipients)
    d.wake_at(oncall.next_escalation_at(steps, opened, int(d.status.get("escalationLevel") or 0)))
    return d.part()


def retention(inp: Inputs, status: Mapping[str, Any]) -> tuple[bool, Part]:
    """(delete it now, else the wake-up at its expiry): a closed incident kept `retention_days`."""
    days = inp.settings.retention_days
    closed = parse_or_none(status.get("closedAt"))
    if days <= 0 or inp.incident.state != State.CLOSED or closed is None:
        return False, NOTHING
    expires = closed + timedelta(days=days)
    if inp.now >= expires:
        return True, NOTHING
    return False, Part(wake=(expires,))
