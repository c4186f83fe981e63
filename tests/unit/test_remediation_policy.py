"""Remediation policy: every branch of decide(), ids, descriptions, the hourly window."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain.remediation import (
    Decision,
    action_type,
    attempt_id,
    decide,
    describe_action,
    prune_recent,
)
from paramedic.domain.timeutil import iso

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RESTART = {"restart": {}}
ANSIBLE = {"ansible": {"playbook": "restart-deployment.yml", "extraVars": {}, "timeoutSeconds": 300}}
SCALE = {"scale": {"replicas": 3}}


def ago(seconds: float) -> str:
    return iso(NOW - timedelta(seconds=seconds))


def service(actions=None, **policy) -> dict:
    remediation = {"actions": [RESTART, ANSIBLE, SCALE] if actions is None else actions,
                   "cooldownSeconds": 120, "verifySeconds": 60, "maxAttempts": 3, "maxPerHour": 6, "dryRun": False}
    remediation.update(policy)
    return {"metadata": {"name": "checkout", "namespace": "shop", "annotations": {}},
            "spec": {"target": {"kind": "Deployment", "name": "checkout"}, "remediation": remediation},
            "status": {"remediation": {"recent": []}}}


def incident(state="open", attempts=None, managed=True, name="checkout-abc") -> dict:
    return {"metadata": {"name": name, "namespace": "shop"},
            "spec": {"service": "checkout", "state": state, "managed": managed, "title": "down"},
            "status": {"remediation": {"attempts": attempts or []}}}


def finished(index: int, seconds_ago: float, result="Failed", **extra) -> dict:
    return {"id": attempt_id("checkout-abc", index), "index": index, "action": "restart",
            "startedAt": ago(seconds_ago + 30), "finishedAt": ago(seconds_ago), "result": result, **extra}


def d(inc, svc, now=NOW, enabled=True) -> Decision:
    return decide(inc, svc, now, enabled_globally=enabled)


class TestSkip:
    def test_unmanaged(self):
        r = d(incident(managed=False), service())
        assert r.kind == "skip" and "unmanaged" in r.reason

    def test_no_service(self):
        r = d(incident(), None)
        assert r.kind == "skip" and "'checkout'" in r.reason and "not found" in r.reason

    def test_global_switch_off(self):
        r = d(incident(), service(), enabled=False)
        assert r.kind == "skip" and "PARAMEDIC_REMEDIATION_ENABLED" in r.reason

    def test_disabled_on_service(self):
        r = d(incident(), service(enabled=False))
        assert r.kind == "skip" and "enabled: false" in r.reason

    @pytest.mark.parametrize("value", ["true", "True", " TRUE "])
    def test_paused_annotation(self, value):
        svc = service()
        svc["metadata"]["annotations"]["paramedic.dev/paused"] = value
        r = d(incident(), svc)
        assert r.kind == "skip" and "paused" in r.reason

    def test_paused_annotation_false_is_ignored(self):
        svc = service()
        svc["metadata"]["annotations"]["paramedic.dev/paused"] = "false"
        assert d(incident(), svc).kind == "act"

    def test_no_actions(self):
        r = d(incident(), service(actions=[]))
        assert r.kind == "skip" and "no remediation actions" in r.reason

    def test_no_remediation_block_at_all(self):
        svc = service()
        del svc["spec"]["remediation"]
        assert d(incident(), svc).kind == "skip"

    @pytest.mark.parametrize("state", ["mitigated", "resolved", "closed"])
    def test_inactive_states(self, state):
        r = d(incident(state=state), service())
        assert r.kind == "skip" and state in r.reason

    def test_already_succeeded(self):
        r = d(incident(attempts=[finished(0, 500, result="Succeeded")]), service())
        assert r.kind == "skip" and "already remediated" in r.reason

    def test_invalid_action(self):
        r = d(incident(), service(actions=[{"restart": {}, "scale": {"replicas": 1}}]))
        assert r.kind == "skip" and "invalid" in r.reason


class TestAct:
    @pytest.mark.parametrize("state", ["open", "acknowledged", "investigating"])
    def test_first_attempt(self, state):
        r = d(incident(state=state), service())
        assert r.kind == "act"
        assert r.action_index == 0 and r.action == RESTART
        assert r.attempt_id == attempt_id("checkout-abc", 0)
        assert r.wait_until is None and r.dry_run is False
        assert "rollout restart Deployment/checkout" in r.reason

    def test_state_defaults_to_open(self):
        inc = incident()
        del inc["spec"]["state"]
        assert d(inc, service()).kind == "act"

    def test_actions_in_order_one_per_attempt(self):
        r = d(incident(attempts=[finished(0, 500)]), service())
        assert (r.kind, r.action_index, r.action) == ("act", 1, ANSIBLE)
        assert r.attempt_id == "checkout-abc-a1"
        r = d(incident(attempts=[finished(0, 900), finished(1, 500, result="TimedOut")]), service())
        assert (r.kind, r.action_index, r.action) == ("act", 2, SCALE)

    def test_dry_run(self):
        r = d(incident(), service(dryRun=True))
        assert r.kind == "act" and r.dry_run and "dry run" in r.reason

    def test_in_flight_is_this_incident(self):
        svc = service()
        svc["status"]["remediation"]["inFlight"] = "checkout-abc"
        assert d(incident(), svc).kind == "act"

    def test_returned_action_is_a_copy(self):
        svc = service()
        r = d(incident(), svc)
        r.action["restart"] = {"timeoutSeconds": 1}  # type: ignore[index]
        assert svc["spec"]["remediation"]["actions"][0] == {"restart": {}}

    def test_inputs_not_modified(self):
        inc, svc = incident(attempts=[finished(0, 500)]), service()
        before = copy.deepcopy((inc, svc))
        d(inc, svc)
        assert (inc, svc) == before


class TestInProgress:
    def test_running_attempt_waits_and_names_it(self):
        running = {"id": "checkout-abc-a0", "index": 0, "action": "restart", "startedAt": ago(5), "result": "Running"}
        r = d(incident(attempts=[running]), service())
        assert r.kind == "wait" and "running" in r.reason
        assert r.attempt_id == "checkout-abc-a0" and r.action_index == 0 and r.action == RESTART

    def test_verifying_within_window(self):
        att = finished(0, 10, result="Verifying", verifyBy=iso(NOW + timedelta(seconds=50)))
        r = d(incident(attempts=[att]), service())
        assert r.kind == "verify" and r.wait_until == NOW + timedelta(seconds=50)
        assert r.attempt_id == att["id"] and NOW < r.wait_until

    def test_verifying_window_over(self):
        att = finished(0, 100, result="Verifying", verifyBy=ago(40))
        r = d(incident(attempts=[att]), service())
        assert r.kind == "verify" and r.wait_until <= NOW and "ended" in r.reason

    def test_verifying_without_verify_by_uses_verify_seconds(self):
        att = finished(0, 10, result="Verifying")
        r = d(incident(attempts=[att]), service(verifySeconds=60))
        assert r.wait_until == NOW + timedelta(seconds=50)

    def test_running_beats_exhaustion(self):
        atts = [finished(0, 900), finished(1, 600), {"index": 2, "startedAt": ago(3), "result": "Running"}]
        r = d(incident(attempts=atts), service())
        assert r.kind == "wait" and r.attempt_id == "checkout-abc-a2"


class TestCooldown:
    def test_waits_until_cooldown_over(self):
        r = d(incident(attempts=[finished(0, 30)]), service(cooldownSeconds=120))
        assert r.kind == "wait" and r.wait_until == NOW + timedelta(seconds=90)
        assert "cooling down" in r.reason

    def test_acts_once_cooldown_over(self):
        assert d(incident(attempts=[finished(0, 121)]), service(cooldownSeconds=120)).kind == "act"
        assert d(incident(attempts=[finished(0, 120)]), service(cooldownSeconds=120)).kind == "act"

    def test_counted_from_end_of_verification(self):
        att = finished(0, 100, verifyBy=ago(40))
        r = d(incident(attempts=[att]), service(cooldownSeconds=120))
        assert r.kind == "wait" and r.wait_until == NOW + timedelta(seconds=80)

    def test_zero_cooldown(self):
        assert d(incident(attempts=[finished(0, 0)]), service(cooldownSeconds=0)).kind == "act"

    def test_default_cooldown_when_absent(self):
        svc = service()
        del svc["spec"]["remediation"]["cooldownSeconds"]
        r = d(incident(attempts=[finished(0, 100)]), svc)
        assert r.kind == "wait" and r.wait_until == NOW + timedelta(seconds=20)


class TestLimits:
    def test_max_attempts(self):
        atts = [finished(0, 900), finished(1, 600)]
        r = d(incident(attempts=atts), service(maxAttempts=2))
        assert r.kind == "exhausted" and "maxAttempts (2)" in r.reason

    def test_exhausted_even_during_cooldown(self):
        atts = [finished(0, 900), finished(1, 600), finished(2, 5)]
        assert d(incident(attempts=atts), service()).kind == "exhausted"

    def test_fewer_actions_than_max_attempts(self):
        r = d(incident(attempts=[finished(0, 900)]), service(actions=[RESTART], maxAttempts=3))
        assert r.kind == "exhausted" and "all 1 configured actions" in r.reason

    def test_hourly_cap(self):
        svc = service(maxPerHour=2)
        svc["status"]["remediation"]["recent"] = [ago(3000), ago(600)]
        r = d(incident(), svc)
        assert r.kind == "capped" and "maxPerHour 2" in r.reason
        assert r.wait_until == NOW + timedelta(seconds=600)

    def test_hourly_cap_ignores_old_entries(self):
        svc = service(maxPerHour=2)
        svc["status"]["remediation"]["recent"] = [ago(3700), ago(4000), ago(600), "garbage"]
        assert d(incident(), svc).kind == "act"

    def test_another_incident_in_flight(self):
        svc = service()
        svc["status"]["remediation"]["inFlight"] = "checkout-other"
        r = d(incident(), svc)
        assert r.kind == "wait" and "checkout-other" in r.reason and r.wait_until is None


def test_attempt_id_is_deterministic_and_label_safe():
    assert attempt_id("checkout-abc", 0) == attempt_id("checkout-abc", 0) == "checkout-abc-a0"
    assert attempt_id("checkout-abc", 0) != attempt_id("checkout-abc", 1)
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert len(attempt_id(long_a, 12)) <= 63
    assert attempt_id(long_a, 12) != attempt_id(long_b, 12)
    assert attempt_id(long_a, 12).endswith("-a12")
    with pytest.raises(ValueError):
        attempt_id("x", -1)


def test_describe_action():
    target = {"kind": "Deployment", "name": "checkout"}
    assert describe_action(RESTART, target) == "rollout restart Deployment/checkout"
    assert describe_action(ANSIBLE, target) == "ansible restart-deployment.yml"
    assert describe_action(SCALE, target) == "scale Deployment/checkout to 3"
    assert describe_action(RESTART, {"kind": "StatefulSet", "name": "db"}) == "rollout restart StatefulSet/db"
    assert describe_action(RESTART, {"name": "web"}) == "rollout restart Deployment/web"
    assert describe_action({"reboot": {}}, target) == "unknown action (reboot)"
    assert describe_action({}, target) == "unknown action (empty)"


def test_action_type():
    assert [action_type(a) for a in (RESTART, ANSIBLE, SCALE)] == ["restart", "ansible", "scale"]
    assert action_type({"restart": {}, "scale": {}}) == "unknown"
    assert action_type(None) == "unknown"


def test_prune_recent():
    recent = [ago(10), ago(3601), ago(3599), "not-a-time", ago(1800)]
    assert prune_recent(recent, NOW) == [ago(3599), ago(1800), ago(10)]
    assert prune_recent([], NOW) == [] and prune_recent(None, NOW) == []
    assert prune_recent([ago(3600)], NOW) == []
