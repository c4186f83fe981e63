from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import lifecycle as lc

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_states_order_and_active():
    assert lc.STATES == ("open", "acknowledged", "investigating", "mitigated", "resolved", "closed")
    assert lc.ACTIVE_STATES == ("open", "acknowledged", "investigating", "mitigated")
    assert lc.is_active("mitigated") and not lc.is_active("resolved")


def test_state_index_unknown_names_valid_states():
    assert lc.state_index("resolved") == 4
    with pytest.raises(ValueError, match="open, acknowledged"):
        lc.state_index("fixed")


@pytest.mark.parametrize("old,new,expected", [
    ("open", "acknowledged", True),
    ("open", "closed", True),
    ("resolved", "open", False),
    ("mitigated", "mitigated", False),
])
def test_is_forward(old, new, expected):
    assert lc.is_forward(old, new) is expected


def test_timestamp_field():
    assert lc.timestamp_field("open") is None
    assert lc.timestamp_field("mitigated") == "mitigatedAt"


def test_ack_sets_timestamp_and_mtta():
    status = {"createdAt": "2026-03-01T11:55:00Z"}
    fx = lc.state_effects("open", "acknowledged", status, T0)
    assert fx == {"acknowledgedAt": "2026-03-01T12:00:00Z", "mttaSeconds": 300, "observedState": "acknowledged"}


def test_auto_resolution_from_open_records_no_acknowledgement_and_no_mtta():
    # An alert that resolves itself: nobody acknowledged, so MTTA must not equal MTTR.
    status = {"createdAt": "2026-03-01T11:00:00Z"}
    fx = lc.state_effects("open", "resolved", status, T0)
    assert fx == {"resolvedAt": "2026-03-01T12:00:00Z", "mttrSeconds": 3600, "unacknowledged": True,
                  "observedState": "resolved"}
    assert lc.was_acknowledged({**status, **fx}) is False


def test_remediation_to_mitigated_then_resolution_is_not_an_acknowledgement():
    status = {"createdAt": "2026-03-01T11:50:00Z"}
    status.update(lc.state_effects("open", "mitigated", status, T0))
    assert status == {"createdAt": "2026-03-01T11:50:00Z", "mitigatedAt": "2026-03-01T12:00:00Z",
                      "observedState": "mitigated"}
    assert lc.was_acknowledged(status) is None
    fx = lc.state_effects("mitigated", "resolved", status, T0 + timedelta(minutes=2))
    assert "mttaSeconds" not in fx and fx["unacknowledged"] is True and fx["mttrSeconds"] == 720


def test_investigating_straight_from_open_is_an_acknowledgement():
    status = {"createdAt": "2026-03-01T11:55:00Z"}
    fx = lc.state_effects("open", "investigating", status, T0)
    assert fx == {"acknowledgedAt": "2026-03-01T12:00:00Z", "investigatingAt": "2026-03-01T12:00:00Z",
                  "mttaSeconds": 300, "observedState": "investigating"}


def test_acknowledged_then_resolved_keeps_both_clocks_apart():
    status = {"createdAt": "2026-03-01T11:00:00Z", "acknowledgedAt": "2026-03-01T11:05:00Z", "mttaSeconds": 300}
    fx = lc.state_effects("acknowledged", "resolved", status, T0)
    assert fx == {"resolvedAt": "2026-03-01T12:00:00Z", "mttrSeconds": 3600, "unacknowledged": False,
                  "observedState": "resolved"}
    assert lc.was_acknowledged({**status, **fx}) is True


def test_acknowledged_and_resolved_in_the_same_second_is_still_acknowledged():
    status = {"createdAt": "2026-03-01T11:00:00Z"}
    status.update(lc.state_effects("open", "acknowledged", status, T0))
    status.update(lc.state_effects("acknowledged", "resolved", status, T0))
    assert status["mttaSeconds"] == status["mttrSeconds"] and status["acknowledgedAt"] == status["resolvedAt"]
    assert lc.was_acknowledged(status) is True


def test_objects_recorded_before_the_fix_read_as_unacknowledged():
    # The old rule stamped every skipped state with the resolution time.
    old = {"createdAt": "2026-03-01T11:00:00Z", "acknowledgedAt": "2026-03-01T12:00:00Z",
           "investigatingAt": "2026-03-01T12:00:00Z", "mitigatedAt": "2026-03-01T12:00:00Z",
           "resolvedAt": "2026-03-01T12:00:00Z", "mttaSeconds": 3600, "mttrSeconds": 3600}
    assert lc.was_acknowledged(old) is False


def test_existing_timestamps_and_clocks_are_kept():
    status = {"createdAt": "2026-03-01T11:00:00Z", "acknowledgedAt": "2026-03-01T11:10:00Z", "mttaSeconds": 600}
    fx = lc.state_effects("open", "investigating", status, T0)
    assert "acknowledgedAt" not in fx and "mttaSeconds" not in fx
    assert fx["investigatingAt"] == "2026-03-01T12:00:00Z"


def test_replaying_the_same_effects_changes_nothing_more():
    status = {"createdAt": "2026-03-01T11:00:00Z"}
    fx = lc.state_effects("open", "resolved", status, T0)
    status.update(fx)
    again = lc.state_effects("open", "resolved", status, T0 + timedelta(minutes=5))
    assert again == {"observedState": "resolved"}


def test_closing_after_resolution_keeps_mttr():
    status = {"createdAt": "2026-03-01T11:00:00Z", "resolvedAt": "2026-03-01T11:30:00Z", "mttrSeconds": 1800,
              "acknowledgedAt": "2026-03-01T11:05:00Z", "mttaSeconds": 300}
    fx = lc.state_effects("resolved", "closed", status, T0)
    assert fx == {"closedAt": "2026-03-01T12:00:00Z", "unacknowledged": False, "observedState": "closed"}


def test_backward_or_same_state_has_no_effects():
    assert lc.state_effects("resolved", "open", {}, T0) == {}
    assert lc.state_effects("open", "open", {}, T0) == {}


def test_missing_created_at_gives_no_clocks():
    fx = lc.state_effects(None, "acknowledged", {}, T0)
    assert fx == {"acknowledgedAt": "2026-03-01T12:00:00Z", "observedState": "acknowledged"}


def test_timeline_entry_shape_and_truncation():
    e = lc.timeline_entry(T0 + timedelta(microseconds=123456), "acknowledged", "alice", "x" * 5000)
    assert e["time"] == "2026-03-01T12:00:00.123Z"
    assert e["type"] == "acknowledged" and e["actor"] == "alice"
    assert len(e["message"]) == lc.TIMELINE_MESSAGE_LIMIT


def _entries(n):
    return [lc.timeline_entry(T0 + timedelta(seconds=i), "opened" if i == 0 else "note", "op", f"m{i}")
            for i in range(n)]


def test_append_timeline_is_append_only_and_does_not_mutate():
    original = _entries(2)
    snapshot = [dict(e) for e in original]
    out = lc.append_timeline(original, _entries(3)[2], limit=10)
    assert out[:2] == snapshot and out[2]["message"] == "m2"
    assert original == snapshot


def test_append_timeline_bounded_keeps_the_opening_entry():
    timeline = []
    for entry in _entries(8):
        timeline = lc.append_timeline(timeline, entry, limit=5)
    assert len(timeline) == 5
    assert [e["message"] for e in timeline] == ["m0", "m4", "m5", "m6", "m7"]


def test_append_timeline_limit_one_and_duplicates():
    entries = _entries(3)
    assert lc.append_timeline(entries[:2], entries[2], 1) == [entries[2]]
    assert lc.append_timeline(entries, entries[1], 10) == entries
    with pytest.raises(ValueError):
        lc.append_timeline([], entries[0], 0)


def test_set_condition_transition_time_moves_only_on_status_change():
    conds = lc.set_condition(None, "Remediated", "False", "Pending", "waiting", T0, 1)
    assert conds == [{"type": "Remediated", "status": "False", "reason": "Pending", "message": "waiting",
                      "lastTransitionTime": "2026-03-01T12:00:00Z", "observedGeneration": 1}]
    later = T0 + timedelta(minutes=3)
    same = lc.set_condition(conds, "Remediated", "False", "Running", "restart", later, 2)
    assert same[0]["lastTransitionTime"] == "2026-03-01T12:00:00Z"
    assert same[0]["reason"] == "Running" and same[0]["observedGeneration"] == 2
    flipped = lc.set_condition(same, "Remediated", "True", "Succeeded", "ok", later, 2)
    assert flipped[0]["lastTransitionTime"] == "2026-03-01T12:03:00Z"
    assert conds[0]["reason"] == "Pending"  # input untouched


def test_set_condition_keeps_other_conditions_and_rejects_bad_status():
    conds = lc.set_condition(None, "A", "True", "r", "m", T0)
    conds = lc.set_condition(conds, "B", "Unknown", "r", "m", T0)
    conds = lc.set_condition(conds, "A", "False", "r2", "m2", T0)
    assert [c["type"] for c in conds] == ["A", "B"]
    assert "observedGeneration" not in conds[1]
    assert lc.get_condition(conds, "B")["status"] == "Unknown"
    assert lc.get_condition(conds, "C") is None
    with pytest.raises(ValueError):
        lc.set_condition(conds, "A", "true", "r", "m", T0)


def _entry(manager: str, time: str, *spec_fields: str, subresource: str | None = None) -> dict:
    entry = {"manager": manager, "operation": "Update", "apiVersion": "paramedic.dev/v1alpha1", "time": time,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {f"f:{f}": {} for f in spec_fields}}}
    if subresource:
        entry["subresource"] = subresource
    return entry


def test_changed_at_is_the_api_servers_time_of_the_request_that_set_the_state():
    from datetime import datetime, timedelta

    from paramedic.domain.lifecycle import changed_at

    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    now = created + timedelta(minutes=10)
    inc = {"metadata": {"creationTimestamp": "2026-11-01T12:00:00Z", "managedFields": [
        _entry("paramedic-webhook", "2026-11-01T12:00:00Z", "service", "title"),
        _entry("kubectl-paramedic", "2026-11-01T12:03:00Z", "state", "assignee"),
        _entry("paramedic-operator", "2026-11-01T12:09:00Z", subresource="status"),
        _entry("kubectl-annotate", "2026-11-01T12:08:00Z")]},
        "spec": {"state": "acknowledged"}, "status": {"createdAt": "2026-11-01T12:00:00Z"}}
    assert changed_at(inc, now) == created + timedelta(minutes=3)
    # No entry owns the state (managedFields cleared): when the operator sees it.
    assert changed_at({**inc, "metadata": {"creationTimestamp": "2026-11-01T12:00:00Z"}}, now) == now
    # Kept within [creation, now]: a time from the future, or before the incident existed.
    assert changed_at(inc, created + timedelta(minutes=1)) == created + timedelta(minutes=1)
    early = {**inc, "metadata": {**inc["metadata"], "managedFields": [
        _entry("forger", "2020-01-01T00:00:00Z", "state")]}}
    assert changed_at(early, now) == created
    # status.createdAt earlier than the object (an alert's start) does not lower that floor.
    assert changed_at({**early, "status": {"createdAt": "2026-11-01T11:00:00Z"}}, now) == created


def test_the_writers_state_changed_at_annotation_is_neither_written_nor_trusted():
    from datetime import datetime, timedelta

    from paramedic.domain.lifecycle import CHANGED_AT_ANNOTATION, changed_at, state_patch

    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    now = created + timedelta(minutes=10)
    patch = state_patch("acknowledged", "alice", "on it", created)
    assert CHANGED_AT_ANNOTATION not in patch["metadata"]["annotations"]
    assert patch["metadata"]["annotations"] == {"paramedic.dev/actor": "alice", "paramedic.dev/reason": "on it"}
    backdated = {"metadata": {"creationTimestamp": "2026-11-01T12:00:00Z",
                              "annotations": {CHANGED_AT_ANNOTATION: "acknowledged 2026-11-01T12:00:00.000Z"},
                              "managedFields": [_entry("mallory", "2026-11-01T12:09:30Z", "state")]},
                 "spec": {"state": "acknowledged"}, "status": {"createdAt": "2026-11-01T12:00:00Z"}}
    assert changed_at(backdated, now) == created + timedelta(minutes=9, seconds=30)
    effects = lc.state_effects("open", "acknowledged", backdated["status"], changed_at(backdated, now))
    assert effects["mttaSeconds"] == 570


def test_closing_an_incident_resolved_before_the_fix_records_what_it_was():
    legacy = {"createdAt": "2026-03-01T11:00:00Z", "acknowledgedAt": "2026-03-01T11:30:00Z",
              "resolvedAt": "2026-03-01T11:30:00Z", "mttaSeconds": 1800, "mttrSeconds": 1800}
    assert lc.state_effects("resolved", "closed", legacy, T0)["unacknowledged"] is True
    acked = {**legacy, "acknowledgedAt": "2026-03-01T11:05:00Z", "mttaSeconds": 300}
    assert lc.state_effects("resolved", "closed", acked, T0)["unacknowledged"] is False
