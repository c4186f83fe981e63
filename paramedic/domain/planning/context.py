"""What surrounds an incident: evidence and probable causes, earlier incidents, people's entries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .. import evidence as evidence_mod
from .. import hints as hints_mod
from .. import history
from ..resources import mapping, sequence, text
from ..timeutil import iso, parse_or_none
from ..vocabulary import SuggestedAction
from .base import NOTHING, Draft, Inputs, Part

REFRESH_BACKOFF_MAX = 16
"""Unchanged evidence is gathered again ever less often, at most this many refresh periods apart."""


def evidence(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """A finished gathering recorded (with the hints ranked from it), and whether to gather again:
    an active incident of a known service, when its evidence is missing or its refresh is due.

    A gathering that finds what is recorded already is not written (a status write per active
    incident per refresh would be the operator's whole cost at rest): it stays in the executor's
    memory as the last look, and the next look is as far after it as the evidence has stayed
    unchanged (between one and `REFRESH_BACKOFF_MAX` refresh periods). Evidence that changed
    is recorded, and looked at again one refresh period later."""
    now, settings = inp.now, inp.settings
    d = Draft(status, now, settings.timeline_limit)
    found = inp.effects.evidence
    recorded = mapping(d.status.get("evidence"))
    refresh = timedelta(seconds=settings.evidence_refresh_seconds)
    last_look: datetime | None = None  # an unchanged gathering held in memory
    if isinstance(found, BaseException):
        d.set(evidence={**recorded, "gatheredAt": iso(now),
                        "error": evidence_mod.cut(f"{found.__class__.__name__}: {found}")})
    elif found is not None and _unchanged(recorded, found):
        last_look = parse_or_none(found.get("gatheredAt")) or now
    elif found is not None:
        d.set(evidence={"error": None, **found})
        _hints(inp, d, found)
    taken = found is not None and last_look is None
    gather = False
    if settings.evidence_enabled and inp.service_body is not None and inp.incident.active:
        gathered = parse_or_none(mapping(d.status.get("evidence")).get("gatheredAt"))
        if gathered is None:
            due = now
        elif last_look is None:
            due = gathered + refresh
        else:
            due = last_look + min(max(last_look - gathered, refresh), refresh * REFRESH_BACKOFF_MAX)
        if now >= due and not inp.effects.evidence_running and (found is None or last_look is not None):
            gather, taken = True, found is not None  # the look held in memory makes way for the next
        elif now < due:
            d.wake_at(due)
    return d.part(taken_evidence=taken, gather_evidence=gather)


def _unchanged(recorded: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    """The gathering found what is recorded (times of gathering and of log reads aside), and the
    record holds no error to clear."""
    if not recorded or recorded.get("error"):
        return False
    return _content(recorded) == _content(found)


def _content(ev: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in ev.items() if k not in ("gatheredAt", "error")}
    out["logs"] = [{k: v for k, v in mapping(item).items() if k != "time"} for item in sequence(ev.get("logs"))]
    return out


def _hints(inp: Inputs, d: Draft, ev: Mapping[str, Any]) -> None:
    opened = parse_or_none(d.status.get("createdAt")) or parse_or_none(inp.incident.created)
    ranked = hints_mod.rank(ev, opened)
    before = [mapping(h).get("summary") for h in sequence(d.status.get("hints"))]
    if before != [h["summary"] for h in ranked]:
        d.set(hints=ranked)
    top = ranked[0] if ranked else None
    if top is not None and (not before or before[0] != top["summary"]):
        d.log("probable-cause", hints_mod.headline(top))
        if top["suggestedAction"] == SuggestedAction.ROLLBACK:
            d.log("rollback-suggested", "the top hint suggests a rollback, which this service's "
                  + ("remediation policy runs" if _offers_rollback(inp) else
                     "remediation policy does not run it (add a `rollback: {}` action, or "
                     "`kubectl rollout undo` it)"))


def _offers_rollback(inp: Inputs) -> bool:
    svc = inp.service
    actions = sequence(svc.remediation.get("actions")) if svc is not None else ()
    return any(isinstance(a, Mapping) and "rollback" in a for a in actions)


def seen_before(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """`status.seenBefore`: earlier incidents of the service, with their root causes."""
    seen = history.seen_before(inp.viewed(status), inp.effects.earlier)
    before = sequence(status.get("seenBefore"))
    if seen == list(before) or (not seen and not before):
        return NOTHING
    d = Draft(status, inp.now, inp.settings.timeline_limit)
    d.set(seenBefore=seen)
    if seen and not before:
        last = seen[0]
        cause = last.get("rootCause") or last.get("probableCause") or "no root cause written"
        d.log("seen-before", f"{len(seen)} earlier incident(s) of this service; the last: {last['name']} "
                             f"({last['createdAt']}): {cause}")
    return d.part()


def people_entries(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """People's comments and applied runbook steps (spec) into the timeline, each once."""
    now = inp.now
    d = Draft(status, now, inp.settings.timeline_limit)
    recorded = dict(mapping(d.status.get("recorded")))
    changed = False
    for field_, type_ in (("comments", "comment"), ("runbookSteps", "runbook-step")):
        entries = [e for e in sequence(inp.incident.spec.get(field_)) if isinstance(e, Mapping)]
        done = recorded.get(field_) or 0
        if not isinstance(done, int) or done > len(entries):
            done = len(entries) if isinstance(done, int) else 0  # a person shortened the list: nothing new
        for entry in entries[done:]:
            when = parse_or_none(entry.get("time")) or now
            actor = str(entry.get("author") or "unknown")
            if type_ == "comment":
                message = str(entry.get("text", ""))
            else:
                message = f"step {entry.get('step')} applied: {text(entry.get('title'), '(untitled)')}"
                if entry.get("note"):
                    message += f" — {entry['note']}"
            d.log(type_, message, actor, at=min(when, now))
        if recorded.get(field_) != len(entries):
            recorded[field_] = len(entries)
            changed = True
    if not changed:
        return NOTHING
    d.set(recorded=recorded)
    return d.part()
