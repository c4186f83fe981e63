"""The planner's parts one by one (paramedic.domain.planning): each a pure function of its
inputs and the status the parts before it left, returning a frozen Part. One table per part."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from paramedic.domain.notify_render import DeliveryResult, unconfigured
from paramedic.domain.planning import clocks, context, opening, outbox
from paramedic.domain.planning import remediation as remediation_part
from paramedic.domain.planning.base import Announcement, Effects, Inputs, Part, PlanSettings
from paramedic.domain.timeutil import iso
from paramedic.domain.vocabulary import AttemptResult, State
from tests.unit.test_incident_plan import NOW, SCHEDULE, SETTINGS, ago, attempt, incident, service


@dataclass
class Case:
    id: str
    part: Callable[[Inputs, Mapping[str, Any]], Part]
    incident: dict
    check: Callable[[Part], Any]
    service: dict | None = field(default_factory=service)
    schedule: dict | None = None
    effects: Effects = field(default_factory=Effects)
    settings: PlanSettings = SETTINGS
    now: datetime = NOW


def run(case: Case) -> Part:
    before = copy.deepcopy((case.incident, case.service, case.schedule))
    inp = Inputs(case.incident, case.service, case.schedule, case.effects, case.settings, case.now)
    part = case.part(inp, case.incident.get("status") or {})
    assert (case.incident, case.service, case.schedule) == before  # inputs are never modified
    return part


def types(part: Part) -> list[str]:
    return [e["type"] for e in part.patch.get("timeline") or []]


def probe_incident(**status: Any) -> dict:
    inc = incident(**status)
    inc["spec"]["source"] = "probe"
    return inc


def no_auto_resolve() -> dict:
    svc = service(probe=True)
    svc["spec"]["autoResolve"] = False
    return svc


PENDING = {"key": "opened", "event": "opened", "detail": "down", "channel": "pending", "recipients": ["a@example.com"],
           "time": ago(5), "result": "pending", "attempts": 0}
RETRYING = {"key": "sla_breach:acknowledge", "event": "sla_breach", "detail": "late", "channel": "email",
            "recipients": ["a@example.com"], "time": ago(300), "result": "retrying", "attempts": 1,
            "nextAttemptAt": ago(1)}

CASES = [
    # --- opening ---
    Case("open: on-call assigned in spec", opening.open_incident, incident(observed=None, escalationLevel=0),
         lambda p: p.spec == {"assignee": "alice@example.com"} and p.patch["observedState"] == "open"
         and types(p)[:2] == ["opened", "assigned"] and p.announcements[0].event == "opened", schedule=SCHEDULE),
    Case("open: no alerts recorded yet is no obstacle", opening.open_incident,
         {**incident(observed=None), "status": {}},
         lambda p: p.patch["createdAt"] and p.patch["sla"] and "unassigned" in types(p)),
    Case("state: acknowledged recorded with its actor", opening.state_changes,
         incident(State.ACKNOWLEDGED, annotations={"paramedic.dev/actor": "bob@example.com"}),
         lambda p: p.patch["observedState"] == "acknowledged" and p.events[0].reason == "IncidentAcknowledged"
         and p.patch["timeline"][-1]["actor"] == "bob@example.com" and not p.forget),
    Case("state: resolved announced and forgotten", opening.state_changes, incident(State.RESOLVED),
         lambda p: p.forget and [a.event for a in p.announcements] == ["resolved"]),
    Case("state: unchanged, nothing", opening.state_changes, incident(), lambda p: p == Part()),
    Case("assignment: a person's reassignment", lambda i, s: opening.assignment(i, s, ""),
         incident(assignee="bob@example.com", known_assignee="alice@example.com"),
         lambda p: p.patch["assignee"] == "bob@example.com" and types(p) == ["assigned"]),
    Case("assignment: what opening assigned", lambda i, s: opening.assignment(i, s, "carol@example.com"),
         incident(), lambda p: p.patch["assignee"] == "carol@example.com"),
    # --- resolutions Paramedic decides ---
    Case("every alert resolved: resolved", opening.resolution,
         incident(alerts=[{"key": "a", "status": "resolved"}, {"key": "b", "status": "resolved"}]),
         lambda p: p.spec == {"state": "resolved"} and p.spec_by == ("paramedic/webhook", "all alerts resolved")),
    Case("one alert firing: not resolved", opening.resolution,
         incident(alerts=[{"key": "a", "status": "resolved"}, {"key": "b", "status": "firing"}]),
         lambda p: p == Part()),
    Case("no alerts recorded yet: not resolved", opening.resolution, incident(), lambda p: p == Part()),
    Case("autoResolve off: not resolved", opening.resolution, incident(alerts=[{"key": "a", "status": "resolved"}]),
         lambda p: p == Part(), service=no_auto_resolve()),
    Case("already resolved: nothing", opening.resolution,
         incident(State.RESOLVED, alerts=[{"key": "a", "status": "resolved"}]), lambda p: p == Part()),
    Case("probe healthy since it opened: resolved", opening.resolution, probe_incident(),
         lambda p: p.spec == {"state": "resolved"} and p.spec_by == ("paramedic/prober", "probe recovered"),
         service=service(probe=True), effects=Effects(probe=("Healthy", ago(1)))),
    Case("probe healthy before it opened: not resolved", opening.resolution, probe_incident(),
         lambda p: p == Part(), service=service(probe=True), effects=Effects(probe=("Healthy", ago(600)))),
    Case("probe down: not resolved", opening.resolution, probe_incident(), lambda p: p == Part(),
         service=service(probe=True), effects=Effects(probe=("Down", ago(1)))),
    Case("probe recovered, autoResolve off: not resolved", opening.resolution, probe_incident(),
         lambda p: p == Part(), service=no_auto_resolve(), effects=Effects(probe=("Healthy", ago(1)))),
    Case("an alert incident's probe recovered: not the prober's to resolve", opening.resolution, incident(),
         lambda p: p == Part(), service=service(probe=True), effects=Effects(probe=("Healthy", ago(1)))),
    # --- clocks ---
    Case("sla: acknowledge deadline passed", clocks.sla_breaches, incident(),
         lambda p: p.patch["sla"]["acknowledgeBreached"] is True and p.announcements[0].event == "sla_breach",
         now=NOW + timedelta(minutes=20)),
    Case("sla: not yet, wakes at the deadline", clocks.sla_breaches, incident(),
         lambda p: not p.patch and p.wake and p.wake[0] > NOW),
    Case("escalation: step due", clocks.escalation, incident(escalationLevel=0),
         lambda p: p.patch["escalationLevel"] == 1 and p.announcements[0].recipients == ("admin@example.com",),
         schedule=SCHEDULE),
    Case("escalation: acknowledged, none", clocks.escalation, incident(State.ACKNOWLEDGED, escalationLevel=0),
         lambda p: p == Part(), schedule=SCHEDULE),
    Case("retention: wake at expiry", lambda i, s: clocks.retention(i, s)[1],
         incident(State.CLOSED, State.CLOSED, closedAt=ago(86400)), lambda p: p.wake == (NOW + timedelta(days=89),)),
    # --- outbox ---
    Case("deliveries: a round recorded", outbox.record_deliveries, incident(notifications=[PENDING]),
         lambda p: p.taken_deliveries == (("opened", "pending"),)
         and [(e["channel"], e["result"]) for e in p.patch["notifications"]] == [("email", "sent")],
         effects=Effects(deliveries={("opened", "pending"): [DeliveryResult("email", ["a@example.com"], ok=True)]})),
    Case("deliveries: nothing finished", outbox.record_deliveries, incident(notifications=[PENDING]),
         lambda p: p == Part()),
    Case("send: pending waits for the first evidence", outbox.deliver_pending, incident(notifications=[PENDING]),
         lambda p: not p.deliveries and p.wake == (NOW + timedelta(seconds=5),)),
    Case("send: pending once evidence is in", outbox.deliver_pending,
         incident(notifications=[PENDING], evidence={"gatheredAt": ago(1)}),
         lambda p: [(d.key, d.channels) for d in p.deliveries] == [("opened", None)]),
    Case("send: a retry that is due, on its channel", outbox.deliver_pending, incident(notifications=[RETRYING]),
         lambda p: [(d.key, d.channels) for d in p.deliveries] == [("sla_breach:acknowledge", {"email"})]),
    # --- context ---
    Case("evidence: missing, gather", context.evidence, incident(),
         lambda p: p.gather_evidence and not p.taken_evidence),
    Case("evidence: gathering failed, recorded", context.evidence, incident(),
         lambda p: p.taken_evidence and "RuntimeError: forbidden" in p.patch["evidence"]["error"],
         effects=Effects(evidence=RuntimeError("forbidden"))),
    Case("evidence: fresh, wake at refresh", context.evidence, incident(evidence={"gatheredAt": ago(10)}),
         lambda p: not p.gather_evidence and p.wake == (NOW + timedelta(seconds=50),)),
    Case("people: a comment into the timeline once", context.people_entries,
         {**incident(), "spec": {**incident()["spec"], "comments": [{"author": "bob", "text": "looking",
                                                                     "time": ago(3)}]}},
         lambda p: types(p) == ["comment"] and p.patch["recorded"] == {"comments": 1, "runbookSteps": 0}),
    # --- remediation ---
    Case("remediation: acts and claims", remediation_part.remediate, incident(),
         lambda p: p.acts and p.claim == {"inFlight": "checkout-abc", "recent": [iso(NOW)]} and p.start_attempt),
    Case("remediation: resolving in this pass, nothing starts",
         lambda i, s: remediation_part.remediate(i, s, resolving=True), incident(),
         lambda p: not p.acts and p.start_attempt is None and p.patch["remediation"]["phase"] == "Skipped"),
    Case("remediation: resolving still records an attempt's end",
         lambda i, s: remediation_part.remediate(i, s, resolving=True),
         incident(attempts=[attempt(AttemptResult.RUNNING)]),
         lambda p: p.patch["remediation"]["attempts"][-1]["result"] == "Failed" and p.release_claim,
         effects=Effects(attempt_results={"checkout-abc-a0": {"result": "Failed", "message": "no"}})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_part(case: Case) -> None:
    assert case.check(run(case))


def test_queue_records_pending_or_skips_by_the_channels_of_the_pass() -> None:
    """The channels configured are the pass's (the executor reads them each time): one configured
    later makes the next announcement pending instead of skipped."""
    opened = [Announcement("opened", "opened", "down", ("a@example.com",))]
    inc = incident()

    def queued(settings: PlanSettings, svc: dict | None = None) -> list[tuple[str, str]]:
        inp = Inputs(inc, svc or service(), None, Effects(), settings, NOW)
        return [(e["channel"], e["result"]) for e in outbox.queue(inp, inc["status"], opened).patch["notifications"]]

    nothing = PlanSettings(timeline_limit=50)
    assert queued(nothing) == [("email", "skipped")]
    assert queued(PlanSettings(timeline_limit=50, slack_configured=True)) == [("pending", "pending")]
    assert queued(PlanSettings(timeline_limit=50, webhook_configured=True)) == [("pending", "pending")]
    own = service()
    own["spec"]["notify"] = {"slackWebhookURL": "https://hooks.example/x"}
    assert queued(nothing, own) == [("pending", "pending")]  # the service's own hook counts


def test_nothing_configured_is_known_before_sending() -> None:
    """The rule the outbox applies (what Notifier.unconfigured used to wrap, never called)."""
    skipped = unconfigured(["a@example.com"], False, False, False)
    assert skipped is not None and all(r.skipped for r in skipped)
    assert [r.channel for r in skipped] == ["email", "slack", "webhook"]
    assert skipped[0].recipients == ["a@example.com"] and "SMTP not configured" in (skipped[0].error or "")
    assert unconfigured(["a@example.com"], False, True, False) is None
    assert unconfigured([], False, False, True) is None
    assert unconfigured(["a@example.com"], True, False, False) is None
    nobody = unconfigured(["not an address"], True, False, False)
    assert nobody is not None and nobody[0].error == "no recipients"


def test_retention_deletes_a_closed_incident_once_kept_long_enough() -> None:
    def due(inc: dict) -> bool:
        return clocks.retention(Inputs(inc, service(), None, Effects(), SETTINGS, NOW), inc["status"])[0]

    assert due(incident(State.CLOSED, State.CLOSED, closedAt=ago(91 * 86400)))
    assert not due(incident(State.CLOSED, State.CLOSED, closedAt=ago(86400)))
    assert not due(incident(State.RESOLVED, State.RESOLVED, closedAt=ago(91 * 86400)))  # only closed ones
