from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import sla

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("severity,expected", [
    ("critical", (5, 60)), ("high", (15, 240)), ("medium", (60, 1440)), ("low", (240, 4320)),
    (None, (15, 240)), ("weird", (15, 240)),
])
def test_default_targets(severity, expected):
    assert sla.targets(severity, None) == expected


def test_override_wins_per_field_and_bad_values_are_ignored():
    assert sla.targets("critical", {"acknowledge": 2}) == (2, 60)
    assert sla.targets("low", {"acknowledge": 10, "resolve": 20}) == (10, 20)
    assert sla.targets("high", {"acknowledge": 0, "resolve": "x"}) == (15, 240)
    assert sla.targets("high", {"acknowledge": True}) == (15, 240)


def test_deadlines_from_datetime_and_string():
    expected = {"acknowledgeMinutes": 5, "resolveMinutes": 60,
                "acknowledgeBy": "2026-03-01T12:05:00Z", "resolveBy": "2026-03-01T13:00:00Z"}
    assert sla.deadlines(T0, 5, 60) == expected
    assert sla.deadlines("2026-03-01T12:00:00Z", 5, 60) == expected


def incident(state="open", **status):
    base = {"createdAt": "2026-03-01T12:00:00Z", "sla": sla.deadlines(T0, 5, 60)}
    sla_extra = status.pop("sla_extra", {})
    base["sla"].update(sla_extra)
    base.update(status)
    return {"spec": {"state": state, "severity": "critical"}, "status": base}


def test_nothing_breached_before_deadlines():
    assert sla.evaluate(incident(), T0 + timedelta(minutes=5)) == []


def test_unacknowledged_past_deadline_breaches_acknowledge_only():
    assert sla.evaluate(incident(), T0 + timedelta(minutes=5, seconds=1)) == ["acknowledge"]


def test_both_breached_when_still_open_after_resolve_deadline():
    assert sla.evaluate(incident(), T0 + timedelta(hours=2)) == ["acknowledge", "resolve"]


def test_recorded_breaches_are_not_reported_again():
    inc = incident(sla_extra={"acknowledgeBreached": True, "breached": True})
    assert sla.evaluate(inc, T0 + timedelta(hours=2)) == ["resolve"]


def test_acknowledged_in_time_is_no_breach_even_much_later():
    inc = incident("acknowledged", acknowledgedAt="2026-03-01T12:04:00Z")
    assert sla.evaluate(inc, T0 + timedelta(minutes=30)) == []


def test_late_acknowledgement_is_a_breach():
    inc = incident("acknowledged", acknowledgedAt="2026-03-01T12:07:00Z")
    assert sla.evaluate(inc, T0 + timedelta(minutes=8)) == ["acknowledge"]


def test_skipped_acknowledgement_counts_the_later_state():
    inc = incident("resolved", resolvedAt="2026-03-01T12:03:00Z")
    assert sla.evaluate(inc, T0 + timedelta(hours=5)) == []


def test_state_set_but_not_yet_stamped_counts_from_now():
    inc = incident("acknowledged")
    assert sla.evaluate(inc, T0 + timedelta(minutes=4)) == []
    assert sla.evaluate(inc, T0 + timedelta(minutes=6)) == ["acknowledge"]


def test_no_recorded_deadlines_no_breaches():
    assert sla.evaluate({"spec": {"state": "open"}, "status": {}}, T0 + timedelta(days=9)) == []
    assert sla.next_deadline({"spec": {}, "status": {}}, T0) is None


def test_breach_fields():
    assert sla.breach_fields(["resolve"]) == {"resolveBreached": True, "breached": True}
    assert sla.breach_fields([]) == {}


def test_next_deadline_moves_from_ack_to_resolve_then_stops():
    assert sla.next_deadline(incident(), T0) == T0 + timedelta(minutes=5)
    acked = incident("acknowledged", acknowledgedAt="2026-03-01T12:02:00Z")
    assert sla.next_deadline(acked, T0) == T0 + timedelta(hours=1)
    done = incident("resolved", acknowledgedAt="2026-03-01T12:02:00Z", resolvedAt="2026-03-01T12:30:00Z")
    assert sla.next_deadline(done, T0) is None


def test_next_deadline_skips_recorded_breach_and_may_be_past():
    breached_ack = incident(sla_extra={"acknowledgeBreached": True, "breached": True})
    assert sla.next_deadline(breached_ack, T0 + timedelta(minutes=10)) == T0 + timedelta(hours=1)
    assert sla.next_deadline(incident(), T0 + timedelta(minutes=10)) == T0 + timedelta(minutes=5)
    assert sla.time_left(incident(), T0 + timedelta(minutes=10)) == timedelta(minutes=-5)
