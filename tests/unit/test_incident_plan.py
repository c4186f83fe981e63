"""The incident planner, without a cluster: one table of (incident state, event) cases."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paramedic.domain import seal, sla
from paramedic.domain.incident_plan import Effects, Plan, PlanSettings, plan
from paramedic.domain.notify_render import DeliveryResult
from paramedic.domain.timeutil import iso, iso_ms
from paramedic.domain.vocabulary import AttemptResult, State

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=2)
SEAL_KEY = b"seal-key-of-the-unit-tests-0123456789"
SETTINGS = PlanSettings(timeline_limit=50, retention_days=90, admin_emails=("admin@example.com",),
                        smtp_configured=True, seal_key=SEAL_KEY)
SCHEDULE = {"metadata": {"name": "shop", "namespace": "shop"},
            "spec": {"participants": [{"name": "Alice", "email": "alice@example.com"}],
                     "rotation": {"start": iso(NOW - timedelta(days=1)), "lengthHours": 24},
                     "escalation": [{"afterMinutes": 1, "notify": "admins"}]}}


def ago(seconds: float) -> str:
    return iso(NOW - timedelta(seconds=seconds))


def service(probe: bool = False, in_flight: str | None = None, recent: list[str] | None = None,
            **policy: Any) -> dict:
    remediation = {"actions": [{"restart": {}}, {"ansible": {"playbook": "fix.yml"}}], "cooldownSeconds": 120,
                   "verifySeconds": 60, "maxAttempts": 2, "maxPerHour": 6, **policy}
    spec: dict[str, Any] = {"team": "shop", "target": {"kind": "Deployment", "name": "checkout"},
                            "remediation": remediation}
    if probe:
        spec["probe"] = {"url": "http://checkout.shop.svc/healthz"}
    return {"metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "7", "annotations": {}},
            "spec": spec, "status": {"remediation": {"inFlight": in_flight, "recent": recent or []}}}


ACTION_SPECS = {"restart": {"restart": {}}, "rollback": {"rollback": {}}, "ansible": {"ansible": {"playbook": "fix.yml"}},
                "scale": {"scale": {"replicas": 3}}}


def attempt(result: str, index: int = 0, action: str = "restart", uid: str = "u1", **extra: Any) -> dict:
    """An attempt as the operator records it: sealed (for the service() of this module by default)."""
    body = {"id": f"checkout-abc-a{index}", "index": index, "action": action, "detail": "rollout restart",
            "service": "checkout", "target": "Deployment/checkout", "actionDigest": seal.action_digest(
                ACTION_SPECS[action]), "dryRun": False,
            "startedAt": ago(40), "restartedAt": iso_ms(NOW - timedelta(seconds=40)), "result": result, **extra}
    return seal.sealed(SEAL_KEY, uid, body)


def incident(state: str = State.OPEN, observed: str | None = State.OPEN, attempts: list[dict] | None = None,
             notifications: list[dict] | None = None, alerts: list[dict] | None = None, assignee: str = "",
             annotations: dict | None = None, known_assignee: str = "", **status: Any) -> dict:
    st: dict[str, Any] = {"createdAt": iso(CREATED), "team": "shop", "escalationLevel": 1,
                          "sla": sla.deadlines(CREATED, 15, 240), "assignee": known_assignee or assignee or None,
                          "observedGeneration": 1, **status}
    if observed is not None:
        st["observedState"] = observed
    if attempts is not None:
        st["remediation"] = {"attempts": attempts}
    if notifications is not None:
        st["notifications"] = notifications
    if alerts is not None:
        st["alerts"] = alerts
    return {"metadata": {"name": "checkout-abc", "namespace": "shop", "uid": "u1", "generation": 1,
                         "resourceVersion": "10", "creationTimestamp": iso(CREATED),
                         "annotations": annotations or {}},
            "spec": {"service": "checkout", "severity": "high", "title": "checkout down", "state": state,
                     "source": "manual", "managed": True, "assignee": assignee},
            "status": st}


def timeline_types(p: Plan) -> list[str]:
    return [e["type"] for e in p.patch.get("timeline") or []]


def entry_of(p: Plan, type_: str) -> dict:
    return next(e for e in p.patch.get("timeline") or [] if e["type"] == type_)


def last_attempt(p: Plan) -> dict:
    return p.status["remediation"]["attempts"][-1]


def notification_events(p: Plan) -> list[str]:
    return [e["event"] for e in p.patch.get("notifications") or []]


@dataclass
class Case:
    id: str
    incident: dict
    check: Callable[[Plan], Any]
    service: dict | None = field(default_factory=service)
    schedule: dict | None = None
    effects: Effects = field(default_factory=Effects)
    settings: PlanSettings = SETTINGS
    now: datetime = NOW


def _opened_and_assigned(p: Plan) -> None:
    assert p.spec_patch == {"spec": {"assignee": "alice@example.com"}}
    assert p.status["observedState"] == "open" and p.status["assignee"] == "alice@example.com"
    assert timeline_types(p)[:2] == ["opened", "assigned"]
    assert [e.reason for e in p.events] == ["IncidentOpened"]
    assert ("incidents_created", ("high", "manual"), 1.0) in [(m.name, m.labels, m.value) for m in p.metrics]
    assert notification_events(p)[0] == "opened" and p.deliveries and p.deliveries[0].channels is None
    assert p.status["conditions"][0]["type"] == "Ready"


def _opened_unassigned(p: Plan) -> None:
    assert not p.spec_patch and "unassigned" in timeline_types(p)
    assert p.status["assignee"] is None


def _acknowledged(p: Plan) -> None:
    assert p.status["observedState"] == "acknowledged" and "acknowledgedAt" in p.patch
    assert [m.name for m in p.metrics if m.name == "mtta"] == ["mtta"]
    assert p.events[0].reason == "IncidentAcknowledged" and "state" in timeline_types(p)
    assert entry_of(p, "state")["actor"] == "alice@example.com"
    assert not p.forget


def _resolved(p: Plan) -> None:
    assert p.status["observedState"] == "resolved" and "mttrSeconds" in p.patch
    assert p.forget and "resolved" in notification_events(p)


def _closed(p: Plan) -> None:
    assert p.status["observedState"] == "closed" and p.forget and "closed" in notification_events(p)


def _mitigated(p: Plan) -> None:
    assert p.status["observedState"] == "mitigated" and not p.forget and not notification_events(p)


def _reassigned(p: Plan) -> None:
    assert p.status["assignee"] == "bob@example.com"
    assert entry_of(p, "assigned")["message"] == "reassigned to bob@example.com (was alice@example.com)"


def _sla_breached(p: Plan) -> None:
    assert p.status["sla"]["acknowledgeBreached"] is True
    assert ("sla_breaches", ("acknowledge",)) in [(m.name, m.labels) for m in p.metrics]
    assert "sla_breach" in notification_events(p)


def _escalated(p: Plan) -> None:
    assert p.status["escalationLevel"] == 1 and p.status["escalations"][0]["recipients"] == ["admin@example.com"]
    assert "escalated" in timeline_types(p) and "escalated" in notification_events(p)


def _retention_deleted(p: Plan) -> None:
    assert p.delete and not p.patch


def _retention_waits(p: Plan) -> None:
    assert not p.delete and p.wake == [NOW + timedelta(days=89)]


def _delivery_recorded(p: Plan) -> None:
    assert p.taken_deliveries == [("opened", "pending")]
    assert [(e["channel"], e["result"]) for e in p.patch["notifications"]] == [("email", "sent")]
    assert "notification-sent" in timeline_types(p) and not p.deliveries


def _delivery_error(p: Plan) -> None:
    entry = p.patch["notifications"][0]
    assert (entry["channel"], entry["result"]) == ("email", "retrying") and "smtp down" in entry["error"]


def _nothing_configured(p: Plan) -> None:
    entries = p.patch["notifications"]
    assert [(e["channel"], e["result"]) for e in entries] == [("email", "skipped")]
    assert not p.deliveries and {m.name for m in p.metrics} >= {"notifications_sent"}


def _acts(p: Plan) -> None:
    a = last_attempt(p)
    assert p.acts and a["result"] == "Running" and a["id"] == "checkout-abc-a0" and a["action"] == "restart"
    assert p.claim == {"inFlight": "checkout-abc", "recent": [iso(NOW)]} and p.start_attempt == a
    assert p.status["remediation"]["phase"] == "Running" and "remediation-started" in timeline_types(p)


def _acts_again_claim_not_recounted(p: Plan) -> None:
    assert p.claim == {"inFlight": "checkout-abc", "recent": [ago(600)]}


def _dry_run(p: Plan) -> None:
    a = last_attempt(p)
    assert a["result"] == "DryRun" and p.claim is None and p.start_attempt is None
    assert p.status["remediation"]["phase"] == "DryRun"


def _still_running(p: Plan) -> None:
    assert not p.patch.get("remediation") and p.start_attempt is None and not p.release_claim


def _acted_now_verifying(p: Plan) -> None:
    a = last_attempt(p)
    assert a["result"] == "Verifying" and a["verifyBy"] == iso(NOW + timedelta(seconds=60))
    assert p.taken_attempts == ["checkout-abc-a0"] and NOW + timedelta(seconds=60) in p.wake
    assert p.status["remediation"]["phase"] == "Verifying" and not p.release_claim


def _action_failed(p: Plan) -> None:
    a = last_attempt(p)
    assert a["result"] == "TimedOut" and p.release_claim and "remediation" in notification_events(p)
    assert ("remediations", ("restart", "timedout")) in [(m.name, m.labels) for m in p.metrics]
    assert p.status["remediation"]["phase"] == "Failed" and NOW in p.wake


def _action_raised(p: Plan) -> None:
    assert last_attempt(p)["result"] == "Failed" and last_attempt(p)["message"] == "RuntimeError: boom"


def _resumed(p: Plan) -> None:
    assert p.start_attempt is not None and p.start_attempt["id"] == "checkout-abc-a0"
    assert timeline_types(p) == ["remediation-resumed"] and "remediation" not in p.patch


def _interrupted(p: Plan) -> None:
    assert last_attempt(p)["result"] == "Interrupted" and p.start_attempt is None and p.release_claim


def _verified_by_probe(p: Plan) -> None:
    assert last_attempt(p)["result"] == "Succeeded" and last_attempt(p)["message"] == "the probe is healthy again"
    assert p.patch["mitigatedAt"] == iso(NOW)  # recorded with the success: a resolution right after keeps it
    assert p.spec_patch["spec"] == {"state": "mitigated"} and p.release_claim
    assert p.spec_patch["metadata"]["annotations"]["paramedic.dev/actor"] == "paramedic/remediation"


def _verified_by_alerts(p: Plan) -> None:
    assert last_attempt(p)["message"] == "all alerts resolved" and p.spec_patch["spec"]["state"] == "mitigated"


def _verified_resolved_meanwhile(p: Plan) -> None:
    assert last_attempt(p)["result"] == "Succeeded" and last_attempt(p)["message"] == "incident is resolved"
    assert p.patch["mitigatedAt"]  # the remediation mitigated it, though the resolution came first
    assert "state" not in p.spec_patch.get("spec", {})


def _verifying_waits(p: Plan) -> None:
    assert "remediation" not in p.patch and NOW + timedelta(seconds=30) in p.wake


def _verify_failed(p: Plan) -> None:
    assert last_attempt(p)["result"] == "Failed" and "did not recover" in last_attempt(p)["message"]
    assert p.release_claim and not p.spec_patch


def _cooling_down(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Waiting" and NOW + timedelta(seconds=90) in p.wake
    assert not p.acts


def _exhausted(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Exhausted" and "remediation-exhausted" in timeline_types(p)
    assert any(e["key"] == "escalated:remediation-exhausted" for e in p.patch["notifications"])


def _capped(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Capped" and "remediation-capped" in timeline_types(p)


def _waits_for_other(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Waiting" and p.orphan_holder == "checkout-other"


def _finish_after_crash(p: Plan) -> None:
    assert p.spec_patch["spec"] == {"state": "mitigated"} and p.release_claim
    assert "remediation" not in p.patch  # phase Succeeded is not rewritten


def _skipped_unmanaged(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Skipped" and not p.acts


def _skipped_mitigated(p: Plan) -> None:
    assert p.status["remediation"]["phase"] == "Skipped" and "incident is mitigated" in p.status["remediation"]["message"]


def _unmanaged() -> dict:
    inc = incident(observed=None)
    inc["spec"]["managed"] = False
    del inc["status"]
    return inc


PENDING = {"key": "opened", "event": "opened", "detail": "down", "channel": "pending", "recipients": ["a@example.com"],
           "time": ago(5), "result": "pending", "attempts": 0}
SENT = [DeliveryResult("email", ["a@example.com"], ok=True, attempts=1)]
CLOSED_STATUS = {"acknowledgedAt": ago(3600), "resolvedAt": ago(3000), "mttaSeconds": 1, "mttrSeconds": 2}

CASES = [
    # --- opening ---
    Case("open/new, on-call schedule: assigned", incident(observed=None, escalationLevel=0), _opened_and_assigned,
         schedule=SCHEDULE),
    Case("open/new, no schedule: unassigned", incident(observed=None), _opened_unassigned),
    # --- people's changes ---
    Case("open->acknowledged", incident(State.ACKNOWLEDGED, assignee="alice@example.com",
                                        annotations={"paramedic.dev/actor": "alice@example.com"}), _acknowledged),
    Case("acknowledged->mitigated", incident(State.MITIGATED, State.ACKNOWLEDGED, acknowledgedAt=ago(60)),
         _mitigated),
    Case("mitigated->resolved", incident(State.RESOLVED, State.MITIGATED), _resolved),
    Case("resolved->closed", incident(State.CLOSED, State.RESOLVED, resolvedAt=ago(60)), _closed),
    Case("reassigned", incident(assignee="bob@example.com", known_assignee="alice@example.com"), _reassigned),
    # --- clocks ---
    Case("open, ack deadline passed: SLA breach", incident(), _sla_breached, now=NOW + timedelta(minutes=20)),
    Case("open, escalation step due", incident(escalationLevel=0), _escalated, schedule=SCHEDULE),
    Case("closed past retention: delete", incident(State.CLOSED, State.CLOSED, closedAt=ago(91 * 86400),
                                                   **CLOSED_STATUS), _retention_deleted),
    Case("closed within retention: wake at expiry", incident(State.CLOSED, State.CLOSED, closedAt=ago(86400),
                                                            **CLOSED_STATUS), _retention_waits, service=None),
    # --- notification outbox ---
    Case("delivery finished: recorded", incident(notifications=[PENDING]), _delivery_recorded,
         effects=Effects(deliveries={("opened", "pending"): SENT})),
    Case("delivery raised: retrying", incident(notifications=[PENDING]), _delivery_error,
         effects=Effects(deliveries={("opened", "pending"): RuntimeError("smtp down")})),
    Case("nothing configured: skipped at once", incident(observed=None), _nothing_configured,
         settings=PlanSettings(timeline_limit=50)),
    # --- remediation ---
    Case("open, policy allows: act", incident(), _acts),
    Case("act again after a lost write: claim counted once", incident(), _acts_again_claim_not_recounted,
         service=service(in_flight="checkout-abc", recent=[ago(600)])),
    Case("act, dry run", incident(), _dry_run, service=service(dryRun=True)),
    Case("running, action in flight", incident(attempts=[attempt(AttemptResult.RUNNING)]), _still_running,
         effects=Effects(running=frozenset({"checkout-abc-a0"}))),
    Case("running, action done", incident(attempts=[attempt(AttemptResult.RUNNING)]), _acted_now_verifying,
         effects=Effects(attempt_results={"checkout-abc-a0": {"result": "Verifying", "message": "restarted"}})),
    Case("running, action timed out", incident(attempts=[attempt(AttemptResult.RUNNING)]), _action_failed,
         effects=Effects(attempt_results={"checkout-abc-a0": {"result": "TimedOut", "message": "slow"}})),
    Case("running, action raised", incident(attempts=[attempt(AttemptResult.RUNNING)]), _action_raised,
         effects=Effects(attempt_results={"checkout-abc-a0": RuntimeError("boom")})),
    Case("running, lost in a restart (restart): resumed", incident(attempts=[attempt(AttemptResult.RUNNING)]),
         _resumed),
    Case("running, lost in a restart (playbook): interrupted",
         incident(attempts=[attempt(AttemptResult.RUNNING, action="ansible")]), _interrupted),
    Case("running while resolved meanwhile: still recorded",
         incident(State.RESOLVED, State.RESOLVED, attempts=[attempt(AttemptResult.RUNNING)], resolvedAt=ago(5)),
         _action_failed,
         effects=Effects(attempt_results={"checkout-abc-a0": {"result": "TimedOut", "message": "slow"}})),
    Case("verifying, probe healthy since", incident(attempts=[attempt(AttemptResult.VERIFYING, finishedAt=ago(20),
                                                                      verifyBy=iso(NOW + timedelta(seconds=40)))]),
         _verified_by_probe, service=service(probe=True), effects=Effects(probe=("Healthy", ago(1)))),
    Case("verifying, alerts resolved", incident(attempts=[attempt(AttemptResult.VERIFYING, finishedAt=ago(20),
                                                                  verifyBy=iso(NOW + timedelta(seconds=40)))],
                                                alerts=[{"status": "resolved"}]), _verified_by_alerts),
    Case("verifying, incident resolved meanwhile",
         incident(State.RESOLVED, State.RESOLVED, resolvedAt=ago(5),
                  attempts=[attempt(AttemptResult.VERIFYING, verifyBy=iso(NOW + timedelta(seconds=40)))]),
         _verified_resolved_meanwhile),
    Case("verifying, not yet", incident(attempts=[attempt(AttemptResult.VERIFYING, finishedAt=ago(30),
                                                          verifyBy=iso(NOW + timedelta(seconds=30)))],
                                        alerts=[{"status": "firing"}]), _verifying_waits),
    Case("verifying, window over", incident(attempts=[attempt(AttemptResult.VERIFYING, finishedAt=ago(70),
                                                              verifyBy=ago(10))],
                                            alerts=[{"status": "firing"}]), _verify_failed),
    Case("failed attempt, cooling down", incident(attempts=[attempt(AttemptResult.FAILED, finishedAt=ago(30))]),
         _cooling_down),
    Case("every attempt made: exhausted",
         incident(attempts=[attempt(AttemptResult.FAILED, finishedAt=ago(900)),
                            attempt(AttemptResult.FAILED, 1, "ansible", finishedAt=ago(600))]), _exhausted),
    Case("hourly cap reached", incident(), _capped, service=service(maxPerHour=1, recent=[ago(60)])),
    Case("another incident holds the service", incident(), _waits_for_other,
         service=service(in_flight="checkout-other")),
    Case("succeeded, crash before mitigated: redone",
         incident(attempts=[attempt(AttemptResult.SUCCEEDED, finishedAt=ago(5))],
                  remediation_phase=None), _finish_after_crash, service=service(in_flight="checkout-abc")),
    Case("unmanaged: skipped", _unmanaged(), _skipped_unmanaged, service=None),
    Case("mitigated, no attempt: not remediated", incident(State.MITIGATED, State.MITIGATED, mitigatedAt=ago(5)),
         _skipped_mitigated),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    before = copy.deepcopy((case.incident, case.service, case.schedule))
    p = plan(case.incident, case.service, case.schedule, case.effects, case.settings, case.now)
    case.check(p)
    assert (case.incident, case.service, case.schedule) == before  # inputs are never modified
    for key, value in p.patch.items():
        assert p.status[key] == value


@pytest.mark.parametrize("source", ["manual", "alertmanager", "grafana", "api", "probe"])
def test_every_incident_is_counted_once_when_it_opens(source: str) -> None:
    """paramedic_incidents_created_total is counted in one place: the first pass, whoever created
    the incident (the receiver and the prober no longer count what they create)."""
    inc = incident(observed=None)
    inc["spec"]["source"] = source
    opened = plan(inc, service(), None, Effects(), SETTINGS, NOW)
    assert [m.labels for m in opened.metrics if m.name == "incidents_created"] == [("high", source)]
    later = plan(incident(), service(), None, Effects(), SETTINGS, NOW)
    assert not [m for m in later.metrics if m.name == "incidents_created"]


def test_plan_is_repeatable() -> None:
    """Same inputs, same plan: the executor may plan twice (on a freshly read service)."""
    a = plan(incident(), service(), None, Effects(), SETTINGS, NOW)
    b = plan(incident(), service(), None, Effects(), SETTINGS, NOW)
    assert (a.patch, a.spec_patch, a.claim, a.wake) == (b.patch, b.spec_patch, b.claim, b.wake)


def test_a_claim_counts_once_even_before_the_previous_release_lands():
    from paramedic.domain.incident_plan import claim_counted

    first = {"startedAt": "2026-11-30T10:00:00Z", "result": "Failed"}
    # The service still names this incident (attempt 1's release not seen yet): attempt 2 is new.
    assert not claim_counted({"inFlight": "inc"}, "inc", ["2026-11-30T10:00:00Z"], [first])
    # Attempt 2's claim was written, then the incident's status write failed: the retry is the same claim.
    assert claim_counted({"inFlight": "inc"}, "inc", ["2026-11-30T10:00:00Z", "2026-11-30T10:00:09Z"], [first])
    # A first attempt claimed once already, and one not claimed yet.
    assert claim_counted({"inFlight": "inc"}, "inc", ["2026-11-30T10:00:00Z"], [])
    assert not claim_counted({}, "inc", ["2026-11-30T10:00:00Z"], [])
    assert not claim_counted({"inFlight": "other"}, "inc", [], [first])
