"""The planner's evidence step: when to gather, how a gathering is recorded, hints and the timeline."""

from __future__ import annotations

from datetime import timedelta

from paramedic.domain.incident_plan import Effects, PlanSettings, plan
from paramedic.domain.planning import context
from paramedic.domain.planning.base import Inputs
from paramedic.domain.timeutil import iso
from paramedic.domain.vocabulary import State
from tests.unit.test_incident_plan import CREATED, NOW, SETTINGS, incident, service, timeline_types

CRASHING = {"ref": "pod/checkout-2-x/app", "pod": "checkout-2-x", "container": "app", "ready": False,
            "restarts": 4, "state": "Waiting", "reason": "CrashLoopBackOff", "lastReason": "Error",
            "lastExitCode": 1, "revision": 2}
ROLLOUT = {"ref": "rollout/2", "revision": 2, "previousRevision": 1, "current": True,
           "time": iso(CREATED - timedelta(minutes=3)), "changes": ["image app: shop/api:1.4 → shop/api:1.5"]}


def gathered(at=NOW, containers=(CRASHING,), rollouts=(ROLLOUT,)) -> dict:
    return {"gatheredAt": iso(at), "target": "Deployment/checkout", "rollouts": list(rollouts),
            "containers": list(containers), "events": [], "nodes": [], "truncated": False}


def test_an_active_incident_without_evidence_asks_for_a_gathering():
    p = plan(incident(), service(), None, Effects(), SETTINGS, NOW)
    assert p.gather_evidence and not p.taken_evidence and "evidence" not in p.patch


def test_no_gathering_while_one_runs_when_off_without_a_service_or_once_resolved():
    assert not plan(incident(), service(), None, Effects(evidence_running=True), SETTINGS, NOW).gather_evidence
    off = PlanSettings(**{**SETTINGS.__dict__, "evidence_enabled": False})
    assert not plan(incident(), service(), None, Effects(), off, NOW).gather_evidence
    assert not plan(incident(), None, None, Effects(), SETTINGS, NOW).gather_evidence
    done = incident(state=State.RESOLVED, observed=State.RESOLVED)
    assert not plan(done, service(), None, Effects(), SETTINGS, NOW).gather_evidence


def test_a_gathering_is_recorded_with_ranked_hints_and_the_top_one_in_the_timeline():
    p = plan(incident(), service(), None, Effects(evidence=gathered()), SETTINGS, NOW)
    assert p.taken_evidence and not p.gather_evidence
    assert p.patch["evidence"]["containers"] == [CRASHING] and p.patch["evidence"]["error"] is None
    assert [h["rule"] for h in p.patch["hints"]] == ["bad-rollout", "crash-loop"]
    assert p.patch["hints"][0]["suggestedAction"] == "rollback"
    assert "probable-cause" in timeline_types(p)
    assert "rollback-suggested" in timeline_types(p)
    entry = next(e for e in p.patch["timeline"] if e["type"] == "rollback-suggested")
    assert "does not run it" in entry["message"]  # the service's actions are restart and ansible
    # The next gathering is due after the refresh interval.
    assert p.seconds_until_wake(NOW) <= SETTINGS.evidence_refresh_seconds + 0.1


def test_a_service_that_offers_rollback_is_told_so():
    svc = service(actions=[{"rollback": {}}])
    p = plan(incident(), svc, None, Effects(evidence=gathered()), SETTINGS, NOW)
    entry = next(e for e in p.patch["timeline"] if e["type"] == "rollback-suggested")
    assert "remediation policy runs" in entry["message"]


def test_the_same_top_hint_is_not_logged_again():
    first = plan(incident(), service(), None, Effects(evidence=gathered()), SETTINGS, NOW)
    # The evidence changed (more was found than it keeps), its top hint did not.
    again = plan(incident(**{k: first.status[k] for k in ("evidence", "hints", "timeline")}), service(), None,
                 Effects(evidence={**gathered(NOW + timedelta(seconds=60)), "truncated": True}),
                 SETTINGS, NOW + timedelta(seconds=60))
    assert timeline_types(again).count("probable-cause") == 1 and "hints" not in again.patch
    assert again.patch["evidence"]["gatheredAt"] == iso(NOW + timedelta(seconds=60))
    assert again.taken_evidence


# --- a gathering that finds what is recorded is not written; the next look backs off --------------

REFRESH = timedelta(seconds=SETTINGS.evidence_refresh_seconds)


def evidence_step(inc: dict, found, now, running: bool = False):
    """The planner's evidence part alone (the whole plan also wakes for SLA clocks and more)."""
    inp = Inputs(inc, service(), None, Effects(evidence=found, evidence_running=running), SETTINGS, now)
    return context.evidence(inp, inp.incident.status)


def test_an_unchanged_gathering_is_not_written_and_stays_in_memory_as_the_last_look():
    recorded = incident(evidence={**gathered(NOW), "error": None})
    look = NOW + REFRESH
    p = evidence_step(recorded, gathered(look), look)
    assert p.patch == {} and not p.taken_evidence and not p.gather_evidence  # nothing to write
    # Unchanged for one refresh period: the next look is one period after this one.
    assert p.wake == (look + REFRESH,)
    whole = plan(recorded, service(), None, Effects(evidence=gathered(look)), SETTINGS, look)
    assert "evidence" not in whole.patch and not whole.taken_evidence


def test_the_next_look_is_as_far_as_the_evidence_stayed_unchanged_up_to_a_bound():
    recorded = incident(evidence={**gathered(NOW), "error": None})
    look = NOW + 4 * REFRESH
    assert evidence_step(recorded, gathered(look), look).wake == (look + 4 * REFRESH,)
    long_ago = incident(evidence={**gathered(NOW - timedelta(days=1)), "error": None})
    assert evidence_step(long_ago, gathered(NOW), NOW).wake == (NOW + context.REFRESH_BACKOFF_MAX * REFRESH,)


def test_when_the_next_look_is_due_the_one_in_memory_makes_way_for_it():
    recorded = incident(evidence={**gathered(NOW), "error": None})
    look = NOW + REFRESH
    due = look + REFRESH
    p = evidence_step(recorded, gathered(look), due)
    assert p.gather_evidence and p.taken_evidence and p.patch == {}
    # Not while a gathering runs (the executor holds no result then anyway).
    assert not evidence_step(recorded, gathered(look), due, running=True).gather_evidence


def test_a_changed_gathering_is_recorded_and_looked_at_again_one_period_later():
    recorded = incident(evidence={**gathered(NOW), "error": None})
    look = NOW + 8 * REFRESH
    changed = gathered(look, containers=({**CRASHING, "restarts": 9},))
    p = evidence_step(recorded, changed, look)
    assert p.taken_evidence and p.patch["evidence"]["gatheredAt"] == iso(look)
    assert p.wake == (look + REFRESH,)


def test_the_same_evidence_after_a_failure_is_recorded_to_clear_the_error():
    failed = incident(evidence={**gathered(NOW), "error": "RuntimeError: API down"})
    look = NOW + REFRESH
    p = plan(failed, service(), None, Effects(evidence=gathered(look)), SETTINGS, look)
    assert p.taken_evidence and p.patch["evidence"]["error"] is None


def test_the_time_a_log_was_read_is_not_a_change():
    def with_log(at):
        return {**gathered(at), "logs": [{"pod": "checkout-2-x", "container": "app", "previous": True,
                                          "time": iso(at), "lines": "panic: boom"}]}
    recorded = incident(evidence={**with_log(NOW), "error": None})
    look = NOW + REFRESH
    assert not plan(recorded, service(), None, Effects(evidence=with_log(look)), SETTINGS, look).taken_evidence
    other = with_log(look)
    other["logs"][0]["lines"] = "panic: other"
    assert plan(recorded, service(), None, Effects(evidence=other), SETTINGS, look).taken_evidence


def test_fresh_evidence_is_not_gathered_again_until_the_refresh_is_due():
    fresh = incident(evidence=gathered(NOW - timedelta(seconds=10)))
    p = plan(fresh, service(), None, Effects(), SETTINGS, NOW)
    assert not p.gather_evidence
    assert abs(p.seconds_until_wake(NOW) - (SETTINGS.evidence_refresh_seconds - 10)) < 0.2
    stale = incident(evidence=gathered(NOW - timedelta(seconds=SETTINGS.evidence_refresh_seconds)))
    assert plan(stale, service(), None, Effects(), SETTINGS, NOW).gather_evidence


def test_a_failed_gathering_keeps_the_last_evidence_and_says_why():
    before = gathered(NOW - timedelta(minutes=5))
    p = plan(incident(evidence=before), service(), None, Effects(evidence=RuntimeError("API down")), SETTINGS, NOW)
    assert p.taken_evidence and p.patch["evidence"]["error"] == "RuntimeError: API down"
    assert p.patch["evidence"]["containers"] == [CRASHING] and p.patch["evidence"]["gatheredAt"] == iso(NOW)
    assert "hints" not in p.patch


# --- the "opened" notification waits (a bounded time) for the first evidence ----------------------

def opened_pending(at=NOW) -> dict:
    return {"key": "opened", "event": "opened", "detail": "checkout down", "channel": "pending",
            "recipients": ["admin@example.com"], "time": iso(at), "result": "pending", "attempts": 0}


def test_a_new_incident_queues_its_page_but_holds_it_for_the_first_evidence():
    p = plan(incident(observed=None), service(), None, Effects(), SETTINGS, NOW)
    assert [n["event"] for n in p.patch["notifications"]] == ["opened"] and p.gather_evidence
    assert p.deliveries == []
    assert p.seconds_until_wake(NOW) <= SETTINGS.evidence_wait_seconds + 0.1


def test_the_page_goes_out_with_the_probable_causes_once_the_evidence_is_in():
    p = plan(incident(notifications=[opened_pending()]), service(), None, Effects(evidence=gathered()), SETTINGS,
             NOW + timedelta(seconds=2))
    [delivery] = p.deliveries
    assert delivery.key == "opened" and delivery.notification.hints
    assert "image app: shop/api:1.4 → shop/api:1.5" in delivery.notification.hints[0]


def test_a_failed_gathering_releases_the_page_too():
    p = plan(incident(notifications=[opened_pending()]), service(), None, Effects(evidence=RuntimeError("API down")),
             SETTINGS, NOW + timedelta(seconds=2))
    assert [d.key for d in p.deliveries] == ["opened"] and not p.deliveries[0].notification.hints


def test_the_page_waits_no_longer_than_the_bound():
    held = incident(notifications=[opened_pending()])
    just_before = NOW + timedelta(seconds=SETTINGS.evidence_wait_seconds - 1)
    assert plan(held, service(), None, Effects(evidence_running=True), SETTINGS, just_before).deliveries == []
    at_bound = NOW + timedelta(seconds=SETTINGS.evidence_wait_seconds)
    assert [d.key for d in plan(held, service(), None, Effects(evidence_running=True), SETTINGS,
                                at_bound).deliveries] == ["opened"]


def test_the_page_does_not_wait_when_no_evidence_will_come_or_the_wait_is_off():
    held = incident(notifications=[opened_pending()])
    off = PlanSettings(**{**SETTINGS.__dict__, "evidence_enabled": False})
    no_wait = PlanSettings(**{**SETTINGS.__dict__, "evidence_wait_seconds": 0})
    assert [d.key for d in plan(held, None, None, Effects(), SETTINGS, NOW).deliveries] == ["opened"]
    assert [d.key for d in plan(held, service(), None, Effects(), off, NOW).deliveries] == ["opened"]
    assert [d.key for d in plan(held, service(), None, Effects(), no_wait, NOW).deliveries] == ["opened"]


def test_only_the_first_page_waits():
    later = {**opened_pending(), "key": "escalated-1", "event": "escalated"}
    p = plan(incident(notifications=[later]), service(), None, Effects(), SETTINGS, NOW)
    assert [d.key for d in p.deliveries] == ["escalated-1"]
