"""Remediation acts only on attempts the operator sealed, and resumes one only when every switch allows it."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from paramedic.domain import remediation, seal
from paramedic.domain.incident_plan import NO_SEAL_KEY, Effects, Plan, PlanSettings, plan
from paramedic.domain.timeutil import iso
from paramedic.domain.vocabulary import AttemptResult, State
from tests.unit.test_incident_plan import NOW, SEAL_KEY, SETTINGS, attempt, incident, service, timeline_types

SCALE_TO_ZERO = {"scale": {"replicas": 0}}


def forged(result: str = AttemptResult.RUNNING, index: int = 1, **extra: Any) -> dict:
    """What a status writer can make: every field right, but no seal of the operator's."""
    body = attempt(result, index, "scale", **extra)
    body.pop("seal")
    return body


def plan_of(inc: dict, svc: dict | None, settings: PlanSettings = SETTINGS, effects: Effects | None = None) -> Plan:
    before = copy.deepcopy((inc, svc))
    p = plan(inc, svc, None, effects or Effects(), settings, NOW)
    assert (inc, svc) == before
    return p


def attempts_of(p: Plan) -> list[dict]:
    return p.status.get("remediation", {}).get("attempts", [])


# --- the seal --------------------------------------------------------------------------------

def test_a_seal_covers_what_the_attempt_does_and_whose_it_is():
    a = attempt(AttemptResult.RUNNING)
    assert seal.verify(SEAL_KEY, "u1", a)
    # The result and what follows it are written later, unsealed.
    assert seal.verify(SEAL_KEY, "u1", {**a, "result": "Failed", "message": "x", "finishedAt": iso(NOW)})
    for name, value in (("index", 1), ("action", "scale"), ("actionDigest", seal.action_digest(SCALE_TO_ZERO)),
                        ("target", "Deployment/payments"), ("service", "payments"), ("dryRun", True),
                        ("restartedAt", "2026-03-01T00:00:00.000Z"), ("id", "other-a0")):
        assert not seal.verify(SEAL_KEY, "u1", {**a, name: value}), name
    assert not seal.verify(SEAL_KEY, "u2", a)  # copied onto another incident
    assert not seal.verify(b"another-key-of-the-same-length-xxxxx", "u1", a)
    assert not seal.verify(SEAL_KEY, "u1", {**a, "seal": "v1:"}) and not seal.verify(SEAL_KEY, "", a)
    with pytest.raises(ValueError):
        seal.seal(b"short", "u1", a)


def test_the_action_digest_ignores_key_order_only():
    assert seal.action_digest({"scale": {"replicas": 0}}) == seal.action_digest({"scale": {"replicas": 0}})
    assert seal.action_digest({"ansible": {"playbook": "a.yml", "timeoutSeconds": 5}}) == \
        seal.action_digest({"ansible": {"timeoutSeconds": 5, "playbook": "a.yml"}})
    assert seal.action_digest({"scale": {"replicas": 0}}) != seal.action_digest({"scale": {"replicas": 1}})


def test_new_attempts_are_sealed():
    p = plan_of(incident(), service())
    [a] = attempts_of(p)
    assert seal.verify(SEAL_KEY, "u1", a) and p.start_attempt == a
    assert (a["service"], a["target"], a["actionDigest"]) == ("checkout", "Deployment/checkout",
                                                              seal.action_digest({"restart": {}}))
    dry = plan_of(incident(), service(dryRun=True))
    assert seal.verify(SEAL_KEY, "u1", attempts_of(dry)[0])


# --- forged attempts ----------------------------------------------------------------------

def test_a_forged_running_attempt_is_not_run_and_the_timeline_says_why():
    """The attack of issue 24: an unmanaged incident, the service's remediation off, a Running
    attempt written into status naming its scale-to-0 action."""
    inc = incident(attempts=[forged()])
    inc["spec"]["managed"] = False
    svc = service(enabled=False, actions=[{"restart": {}}, SCALE_TO_ZERO])
    p = plan_of(inc, svc)
    assert p.start_attempt is None and p.claim is None and not p.acts
    assert attempts_of(p) == []
    [entry] = [e for e in p.patch["timeline"] if e["type"] == "remediation-ignored"]
    assert "attempt 2 (Running" in entry["message"] and "did not record it" in entry["message"]
    assert entry["actor"] == "paramedic/operator"
    assert ("remediations", ("scale", "ignored")) in [(m.name, m.labels) for m in p.metrics]
    assert p.status["remediation"]["phase"] == "Skipped"


@pytest.mark.parametrize("result", [AttemptResult.RUNNING, AttemptResult.VERIFYING])
def test_a_forged_attempt_is_dropped_even_where_remediation_would_run(result):
    """Managed, enabled: the forged attempt is neither resumed nor verified (no false success);
    remediation goes on from the operator's own attempts."""
    inc = incident(attempts=[attempt(AttemptResult.FAILED, finishedAt=iso(NOW - timedelta(minutes=10))),
                             forged(result, verifyBy=iso(NOW - timedelta(seconds=1)))],
                   alerts=[{"status": "resolved"}])
    # autoResolve off: every alert resolved would resolve the incident (`opening.resolution`); here
    # the resolved alerts only tempt a false verification of the forged attempt.
    svc = service(actions=[{"restart": {}}, SCALE_TO_ZERO])
    svc["spec"]["autoResolve"] = False
    p = plan_of(inc, svc)
    assert "remediation-ignored" in timeline_types(p) and "remediation-succeeded" not in timeline_types(p)
    assert not p.spec_patch.get("spec", {}).get("state")
    # The next attempt is the operator's own decision: action 2, sealed anew.
    assert [a["id"] for a in attempts_of(p)] == ["checkout-abc-a0", "checkout-abc-a1"]
    assert seal.verify(SEAL_KEY, "u1", attempts_of(p)[1]) and p.start_attempt == attempts_of(p)[1]


def test_a_forged_history_does_not_steer_which_action_runs():
    inc = incident(attempts=[forged(AttemptResult.FAILED, 0, finishedAt=iso(NOW - timedelta(hours=1)))])
    p = plan_of(inc, service(actions=[{"restart": {}}, SCALE_TO_ZERO]))
    assert p.start_attempt is not None and p.start_attempt["action"] == "restart" and p.start_attempt["index"] == 0


def test_a_sealed_attempt_tampered_with_or_copied_from_another_incident_is_forged():
    moved = attempt(AttemptResult.RUNNING)
    moved["index"] = 1  # the same seal, another action
    copied = attempt(AttemptResult.RUNNING, uid="another-incident")
    for bad in (moved, copied):
        p = plan_of(incident(attempts=[bad]), service(actions=[{"restart": {}}, SCALE_TO_ZERO]))
        assert "remediation-ignored" in timeline_types(p) and p.start_attempt is not None
        assert p.start_attempt["action"] == "restart"  # a fresh attempt 1, not the tampered one


def test_without_the_key_nothing_is_started_resumed_or_dropped():
    keyless = PlanSettings(**{**SETTINGS.__dict__, "seal_key": None})
    p = plan_of(incident(), service(), keyless)
    assert p.start_attempt is None and not p.acts and p.status["remediation"] == {
        "phase": "Waiting", "message": NO_SEAL_KEY, "attempts": []}
    running = incident(attempts=[attempt(AttemptResult.RUNNING)])
    p = plan_of(running, service(), keyless)
    assert p.start_attempt is None and attempts_of(p) == running["status"]["remediation"]["attempts"]
    # Nothing to remediate: nothing waits for the key.
    assert plan_of(_unmanaged(incident()), service(), keyless).status["remediation"]["phase"] == "Skipped"


def test_attempts_from_before_sealing_stay_as_history_and_are_never_resumed():
    since = PlanSettings(**{**SETTINGS.__dict__, "sealed_since": NOW - timedelta(seconds=1)})
    old_failed = forged(AttemptResult.FAILED, 0, finishedAt=iso(NOW - timedelta(hours=1)))
    old_running = forged(AttemptResult.RUNNING, 1)
    p = plan_of(incident(attempts=[old_failed, old_running]), service(in_flight="checkout-abc", maxAttempts=3,
                                                                       actions=[{"restart": {}}, SCALE_TO_ZERO]),
                since)
    assert p.start_attempt is None and "remediation-ignored" not in timeline_types(p)
    assert [a["result"] for a in attempts_of(p)] == ["Failed", "Interrupted"] and p.release_claim
    assert "before Paramedic sealed its attempts, or not by Paramedic" in attempts_of(p)[1]["message"]
    # An incident created after sealing began has no such history: the same attempts are forged.
    later = PlanSettings(**{**SETTINGS.__dict__, "sealed_since": NOW - timedelta(days=1)})
    p = plan_of(incident(attempts=[old_failed, old_running]), service(), later)
    assert timeline_types(p).count("remediation-ignored") == 2


# --- resuming a lost attempt: every switch first ---------------------------------------------

def _unmanaged(inc: dict) -> dict:
    inc["spec"]["managed"] = False
    return inc


SWITCHES = [
    ("unmanaged", _unmanaged, service(), SETTINGS, "unmanaged incident"),
    ("global switch", lambda i: i, service(), PlanSettings(**{**SETTINGS.__dict__, "remediation_enabled": False}),
     "PARAMEDIC_REMEDIATION_ENABLED=false"),
    ("service disabled", lambda i: i, service(enabled=False), SETTINGS, "spec.remediation.enabled: false"),
    ("paused", lambda i: i, {**service(), "metadata": {**service()["metadata"],
                                                        "annotations": {"paramedic.dev/paused": "true"}}},
     SETTINGS, "paused"),
    ("dry run", lambda i: i, service(dryRun=True), SETTINGS, "dry run"),
    ("maintenance", lambda i: i, {**service(), "status": {**service()["status"], "maintenance": {
        "active": True, "until": iso(NOW + timedelta(minutes=30))}}}, SETTINGS, "maintenance window"),
    ("action changed", lambda i: i, service(actions=[{"restart": {"timeoutSeconds": 5}}]), SETTINGS,
     "action 1 of the service changed"),
    ("target changed", lambda i: i, {**service(), "spec": {**service()["spec"], "target": {"name": "payments"}}},
     SETTINGS, "target changed"),
]


@pytest.mark.parametrize("why, change, svc, settings, reason", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_a_sealed_attempt_lost_in_a_restart_is_resumed_only_when_every_switch_allows(why, change, svc, settings,
                                                                                     reason):
    inc = change(incident(attempts=[attempt(AttemptResult.RUNNING)]))
    p = plan_of(inc, svc, settings)
    assert p.start_attempt is None, why
    [a] = attempts_of(p)
    assert a["result"] == "Interrupted" and a["message"].startswith("the operator restarted during the run; "
                                                                     "not resumed: ")
    assert reason in a["message"], a["message"]
    assert "remediation-resumed" not in timeline_types(p)
    # With every switch on, the same attempt is resumed.
    ok = plan_of(incident(attempts=[attempt(AttemptResult.RUNNING)]), service())
    assert ok.start_attempt is not None and timeline_types(ok) == ["remediation-resumed"]


def test_resume_hold_checks_the_switches_before_the_act():
    inc = incident(attempts=[attempt(AttemptResult.RUNNING)])
    a = inc["status"]["remediation"]["attempts"][0]
    assert remediation.resume_hold(inc, service(), a, enabled_globally=True) is None
    assert "globally" in remediation.resume_hold(inc, service(), a, enabled_globally=False)
    assert "not found" in remediation.resume_hold(inc, None, a, enabled_globally=True)
    assert "no action 3" in remediation.resume_hold(inc, service(), {**a, "index": 2}, enabled_globally=True)
    assert "another service" in remediation.resume_hold(inc, service(), {**a, "service": "x"}, enabled_globally=True)
    assert "maintenance" in remediation.resume_hold(inc, service(), a, enabled_globally=True,
                                                    maintenance_until=NOW + timedelta(minutes=1))


def test_finishing_an_attempt_this_process_runs_needs_no_switch():
    """Recording an outcome is not acting: an attempt whose action this process ran is recorded
    even when the service was paused meanwhile (the seal still says it is the operator's)."""
    paused = {**service(), "metadata": {**service()["metadata"], "annotations": {"paramedic.dev/paused": "true"}}}
    p = plan_of(incident(State.OPEN, attempts=[attempt(AttemptResult.RUNNING)]), paused,
                effects=Effects(attempt_results={"checkout-abc-a0": {"result": "Verifying", "message": "ok"}}))
    assert attempts_of(p)[0]["result"] == "Verifying" and p.start_attempt is None
