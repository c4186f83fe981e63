"""The normalised alert (domain/alert.py): its key, fingerprint, severity words, cut copies, deduplication."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from paramedic.domain import alert_parse as parsing
from paramedic.domain.alert import Alert, cut, dedupe, labels_fingerprint, normalize_severity, stored_labels
from tests.unit.alert_samples import alert_with, am_alert, payload


def test_key_is_stable_across_resends_and_distinct_per_start():
    a = parsing.parse_alertmanager(payload())[0]
    b = parsing.parse_alertmanager(payload())[0]
    c = parsing.parse_alertmanager(payload(am_alert(startsAt="2026-03-02T10:30:00Z")))[0]
    assert a.key == b.key
    assert a.key != c.key


def test_missing_fingerprint_is_computed_like_prometheus():
    raw = am_alert()
    del raw["fingerprint"]
    [alert] = parsing.parse_alertmanager(payload(raw))
    assert re.fullmatch(r"[0-9a-f]{16}", alert.fingerprint)
    # FNV-1a of the empty label set is the offset basis, as in prometheus/common/model.
    assert labels_fingerprint({}) == "cbf29ce484222325"
    # Order of labels does not matter; values do.
    assert labels_fingerprint({"a": "1", "b": "2"}) == labels_fingerprint({"b": "2", "a": "1"})
    assert labels_fingerprint({"a": "1"}) != labels_fingerprint({"a": "2"})
    # A name/value split differently must not collide (the separator byte).
    assert labels_fingerprint({"ab": "c"}) != labels_fingerprint({"a": "bc"})


@pytest.mark.parametrize("label, expected", [
    ("critical", "critical"), ("CRITICAL", "critical"), ("page", "high"), ("error", "high"),
    ("high", "high"), ("warning", "medium"), ("medium", "medium"), ("info", "low"), ("low", "low"),
    ("bogus", None), ("", None),
])
def test_severity_mapping(label, expected):
    assert normalize_severity(label) == expected


def test_cut_marks_what_it_cuts():
    assert cut("abc", 3) == "abc"
    assert cut("abcd", 3) == "ab…"
    assert stored_labels({"a" * 300: "b" * 2000}) == {"a" * 255 + "…": "b" * 1023 + "…"}
    assert stored_labels({f"k{i}": "v" for i in range(5)}, 2) == {"k0": "v", "k1": "v"}


def test_dedupe_within_a_request_keeps_resolution():
    firing = parsing.parse_alertmanager(payload())[0]
    resolved = parsing.parse_alertmanager(payload(am_alert(status="resolved", endsAt="2026-03-02T10:00:00Z")))[0]
    other = parsing.parse_alertmanager(payload(am_alert(fingerprint="ffff")))[0]
    out = dedupe([firing, other, firing, resolved])
    assert [a.key for a in out] == [firing.key, other.key]
    assert out[0].status == "resolved"


_ENDS = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize("copies, status, fired_too, ends_at", [
    (["firing", "resolved"], "resolved", True, _ENDS),     # fired and resolved in one request: the
    (["resolved", "firing"], "resolved", True, _ENDS),     # resolved copy, marked as having fired too
    (["firing", "resolved", "firing"], "resolved", True, _ENDS),
    (["resolved"], "resolved", False, _ENDS),              # a resolution alone
    (["resolved", "resolved"], "resolved", False, _ENDS),
    (["firing", "firing"], "firing", False, None),         # a re-send: one copy
    (["firing"], "firing", False, None),
])
def test_dedupe_keeps_one_copy_per_key_and_whether_it_also_fired(copies, status, fired_too, ends_at):
    def copy(s: str) -> Alert:
        return Alert(fingerprint="f", status=s, labels={"alertname": "A"}, annotations={}, starts_at=_ENDS,
                     ends_at=_ENDS if s == "resolved" else None)
    other = Alert(fingerprint="g", status="firing", labels={}, annotations={}, starts_at=_ENDS)
    out = dedupe([copy(copies[0]), other, *map(copy, copies[1:])])
    assert [a.fingerprint for a in out] == ["f", "g"], "first-seen order"
    assert (out[0].status, out[0].fired_too, out[0].ends_at) == (status, fired_too, ends_at)
    assert out[1] == other


def test_service_hint_for_unmatched_alerts():
    assert alert_with({"service": "s", "alertname": "A"}).service_hint == "s"
    assert alert_with({"alertname": "A"}).service_hint == "A"
    assert alert_with({}).service_hint == "unknown"
