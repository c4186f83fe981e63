from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.domain import oncall
from paramedic.domain.oncall import Person
from paramedic.domain.timeutil import iso, parse

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
ALICE = {"name": "Alice", "email": "alice@example.com"}
BOB = {"name": "Bob", "email": "bob@example.com"}
CAROL = {"name": "Carol", "email": "carol@example.com"}


def schedule(participants=(ALICE, BOB, CAROL), length=24, overrides=(), escalation=()):
    return {"participants": list(participants), "rotation": {"start": iso(START), "lengthHours": length},
            "overrides": list(overrides), "escalation": list(escalation)}


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def override(start_h, end_h, email, name=None):
    entry = {"start": iso(at(start_h)), "end": iso(at(end_h)), "email": email}
    if name:
        entry["name"] = name
    return entry


# --- examples -------------------------------------------------------------------

def test_rotation_in_participant_order_and_wraps():
    spec = schedule()
    assert [oncall.on_call_at(spec, at(h)).email for h in (0, 23.9, 24, 48, 72, 96)] == [
        "alice@example.com", "alice@example.com", "bob@example.com", "carol@example.com",
        "alice@example.com", "bob@example.com"]
    assert oncall.on_call_at(spec, at(0)) == Person("Alice", "alice@example.com")


def test_before_start_the_first_participant():
    assert oncall.on_call_at(schedule(), at(-1000)).email == "alice@example.com"
    assert oncall.next_handoff(schedule(), at(-1000)) == at(24)


def test_default_shift_is_a_week():
    spec = schedule()
    del spec["rotation"]["lengthHours"]
    assert oncall.on_call_at(spec, at(167)).email == "alice@example.com"
    assert oncall.on_call_at(spec, at(168)).email == "bob@example.com"


def test_override_wins_and_latest_start_wins():
    spec = schedule(overrides=[override(10, 30, "dave@example.com", "Dave"), override(12, 14, "erin@example.com")])
    assert oncall.on_call_at(spec, at(11)) == Person("Dave", "dave@example.com")
    assert oncall.on_call_at(spec, at(13)) == Person("erin@example.com", "erin@example.com")
    assert oncall.on_call_at(spec, at(14)).email == "dave@example.com"  # end is exclusive
    assert oncall.on_call_at(spec, at(30)).email == "bob@example.com"


def test_equal_starts_the_last_listed_wins():
    spec = schedule(overrides=[override(1, 5, "dave@example.com"), override(1, 3, "erin@example.com")])
    assert oncall.on_call_at(spec, at(2)).email == "erin@example.com"


def test_malformed_overrides_are_ignored():
    spec = schedule(overrides=[{"start": "nonsense", "end": iso(at(5)), "email": "x@example.com"},
                               override(5, 1, "y@example.com")])
    assert oncall.on_call_at(spec, at(2)).email == "alice@example.com"


def test_next_handoff_through_overrides():
    spec = schedule(overrides=[override(10, 30, "dave@example.com")])
    assert oncall.next_handoff(spec, at(0)) == at(10)
    assert oncall.next_handoff(spec, at(10)) == at(30)      # bob's shift boundary at 24 is hidden
    assert oncall.next_handoff(spec, at(30)) == at(48)


def test_override_by_the_rotation_person_is_no_handoff():
    spec = schedule(overrides=[override(10, 20, "alice@example.com")])
    assert oncall.next_handoff(spec, at(0)) == at(24)


def test_single_participant_never_hands_off_without_overrides():
    assert oncall.next_handoff(schedule(participants=[ALICE]), at(5)) is None
    spec = schedule(participants=[ALICE], overrides=[override(10, 12, "bob@example.com")])
    assert oncall.next_handoff(spec, at(5)) == at(10)
    assert oncall.next_handoff(spec, at(11)) == at(12)
    assert oncall.next_handoff(spec, at(12)) is None


def test_repeated_participant_is_one_long_shift():
    spec = schedule(participants=[ALICE, ALICE, BOB])
    assert oncall.next_handoff(spec, at(1)) == at(48)


def test_next_in_rotation():
    spec = schedule()
    assert oncall.next_in_rotation(spec, at(1)).email == "bob@example.com"
    assert oncall.next_in_rotation(spec, at(50)).email == "alice@example.com"
    # Bob covers Alice's shift: escalating to "next" should reach Carol, not Bob again.
    covered = schedule(overrides=[override(0, 10, "bob@example.com")])
    assert oncall.next_in_rotation(covered, at(1)).email == "carol@example.com"
    assert oncall.next_in_rotation(schedule(participants=[ALICE]), at(1)).email == "alice@example.com"


def test_invalid_schedules_raise():
    with pytest.raises(ValueError):
        oncall.on_call_at({"participants": [], "rotation": {"start": iso(START)}}, START)
    with pytest.raises(ValueError):
        oncall.on_call_at({"participants": [ALICE], "rotation": {}}, START)


STEPS = [{"afterMinutes": 0, "notify": "oncall"}, {"afterMinutes": 15, "notify": "next"},
         {"afterMinutes": 30, "notify": "admins"}, {"afterMinutes": 45, "notify": "boss@example.com"}]


def test_escalation_due_each_step_once():
    opened = at(1)
    assert oncall.escalation_due(STEPS, opened, 0, opened) == [(0, STEPS[0])]
    assert oncall.escalation_due(STEPS, opened, 1, opened + timedelta(minutes=14)) == []
    assert oncall.escalation_due(STEPS, opened, 1, opened + timedelta(minutes=31)) == [(1, STEPS[1]), (2, STEPS[2])]
    assert oncall.escalation_due(STEPS, opened, 4, opened + timedelta(days=1)) == []


def test_escalation_steps_out_of_order_are_taken_in_time_order():
    steps = [{"afterMinutes": 30, "notify": "admins"}, {"afterMinutes": 10, "notify": "next"}]
    due = oncall.escalation_due(steps, at(0), 0, at(0) + timedelta(minutes=20))
    assert due == [(0, steps[1])]
    assert oncall.next_escalation_at(steps, at(0), 1) == at(0) + timedelta(minutes=30)


def test_next_escalation_at():
    opened = at(1)
    assert oncall.next_escalation_at(STEPS, opened, 0) == opened
    assert oncall.next_escalation_at(STEPS, opened, 2) == opened + timedelta(minutes=30)
    assert oncall.next_escalation_at(STEPS, opened, 4) is None
    assert oncall.next_escalation_at([], opened, 0) is None


def test_escalation_recipients():
    spec = schedule()
    admins = ["ops@example.com", "OPS@example.com", "cto@example.com"]
    assert oncall.escalation_recipients(STEPS[0], spec, at(1), admins) == ["alice@example.com"]
    assert oncall.escalation_recipients(STEPS[1], spec, at(1), admins) == ["bob@example.com"]
    assert oncall.escalation_recipients(STEPS[2], spec, at(1), admins) == ["ops@example.com", "cto@example.com"]
    assert oncall.escalation_recipients(STEPS[3], spec, at(1), admins) == ["boss@example.com"]
    assert oncall.escalation_recipients({"notify": "nobody"}, spec, at(1), admins) == []
    assert oncall.escalation_recipients(STEPS[2], spec, at(1), None) == []


# --- properties -----------------------------------------------------------------

EMAILS = [f"p{i}@example.com" for i in range(5)]
people = st.lists(st.sampled_from(EMAILS), min_size=1, max_size=5).map(
    lambda emails: [{"name": e.split("@")[0].upper(), "email": e} for e in emails])
hours = st.integers(min_value=-200, max_value=800)
override_st = st.tuples(hours, st.integers(min_value=1, max_value=120),
                        st.sampled_from(EMAILS + ["sub@example.com"])).map(
    lambda t: override(t[0], t[0] + t[1], t[2]))
schedules = st.builds(lambda p, length, ovs: schedule(participants=p, length=length, overrides=ovs),
                      people, st.integers(min_value=1, max_value=72), st.lists(override_st, max_size=6))
instants = st.integers(min_value=-300 * 60, max_value=900 * 60).map(lambda m: START + timedelta(minutes=m))


def _covering(spec, t):
    return [o for o in spec["overrides"] if parse(o["start"]) <= t < parse(o["end"])]


@settings(max_examples=300, deadline=None)
@given(schedules, instants)
def test_exactly_one_person_who_is_a_participant_or_override(spec, t):
    person = oncall.on_call_at(spec, t)
    allowed = {p["email"] for p in spec["participants"]} | {o["email"] for o in spec["overrides"]}
    assert person.email in allowed
    covering = _covering(spec, t)
    if covering:
        assert person.email in {o["email"] for o in covering}
    else:
        assert person.email in {p["email"] for p in spec["participants"]}


@st.composite
def covered_instants(draw):
    """A schedule with overrides, and an instant inside one of them (often inside several)."""
    spec = draw(st.builds(lambda p, length, ovs: schedule(participants=p, length=length, overrides=ovs),
                          people, st.integers(min_value=1, max_value=72), st.lists(override_st, min_size=1, max_size=6)))
    chosen = draw(st.sampled_from(spec["overrides"]))
    start, end = parse(chosen["start"]), parse(chosen["end"])
    return spec, start + timedelta(minutes=draw(st.integers(0, (end - start) // timedelta(minutes=1) - 1)))


@settings(max_examples=300, deadline=None)
@given(covered_instants())
def test_overrides_win(covered):
    spec, t = covered
    covering = _covering(spec, t)
    assert covering  # every input is covered: the assertion below always runs
    latest = max(parse(o["start"]) for o in covering)
    winners = [o for o in covering if parse(o["start"]) == latest]
    assert oncall.on_call_at(spec, t).email == winners[-1]["email"]


@settings(max_examples=200, deadline=None)
@given(schedules, instants, st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=8))
def test_handoff_happens_at_the_right_time(spec, t, fractions):
    person = oncall.on_call_at(spec, t).key
    handoff = oncall.next_handoff(spec, t)
    if handoff is None:
        # Nobody else ever: check a long stretch ahead, past every override and a full rotation.
        horizon = START + timedelta(hours=1000 + 72 * len(spec["participants"]))
        span = horizon - t
        probes = [t + span * f for f in fractions] + [horizon]
        assert all(oncall.on_call_at(spec, p).key == person for p in probes)
        return
    assert handoff > t
    span_us = (handoff - t) // timedelta(microseconds=1)
    for f in fractions:
        # Whole microseconds, rounded down: timedelta * float could round up onto the handoff.
        assert oncall.on_call_at(spec, t + timedelta(microseconds=int(span_us * f))).key == person
    assert oncall.on_call_at(spec, handoff - timedelta(microseconds=1)).key == person
    assert oncall.on_call_at(spec, handoff).key != person


@settings(max_examples=200, deadline=None)
@given(schedules, instants)
def test_next_in_rotation_is_a_participant(spec, t):
    assert oncall.next_in_rotation(spec, t).email in {p["email"] for p in spec["participants"]}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(lambda m: {"afterMinutes": m, "notify": "oncall"},
                          st.integers(min_value=0, max_value=120)), max_size=6),
       st.lists(st.integers(min_value=0, max_value=150), min_size=1, max_size=6))
def test_escalation_every_step_taken_exactly_once(steps, checks):
    opened = START
    level = 0
    taken = []
    for minute in sorted(checks) + [10**4]:
        due = oncall.escalation_due(steps, opened, level, opened + timedelta(minutes=minute))
        taken += [lvl for lvl, _ in due]
        if due:
            level = due[-1][0] + 1
    assert taken == list(range(len(steps)))
    assert oncall.next_escalation_at(steps, opened, level) is None
