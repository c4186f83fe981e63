"""Recording alerts on an incident (domain/alert_records.py), and the incident body that holds them."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from paramedic.domain import alert_parse as parsing
from paramedic.domain import alert_records as records
from paramedic.domain.alert import MAX_DESCRIPTION
from paramedic.ingest import build_incident
from tests.unit.alert_samples import NOW, am_alert, payload


def incident(alerts: list | None = None, state: str = "open", **status) -> dict:
    body = build_incident("shop", "checkout-critical-x", service="checkout", severity="critical", title="t",
                          description="", source="alertmanager", managed=True, labels={}, runbook_url="", now=NOW)
    body["metadata"]["resourceVersion"] = "1"
    body["metadata"]["creationTimestamp"] = "2026-03-02T09:59:00Z"
    body["spec"]["state"] = state
    body["status"] = {"alerts": alerts or [], **status}
    return body


def test_record_new_alerts_and_created_at():
    alerts = parsing.parse_alertmanager(payload(am_alert(), am_alert(fingerprint="bb")))
    rec = records.record_alerts(incident(), alerts, NOW, timeline_limit=50, created=True)
    status = rec.patch["status"]
    assert [a["key"] for a in status["alerts"]] == [a.key for a in alerts]
    assert status["alerts"][0]["status"] == "firing"
    assert status["alerts"][0]["labels"]["service"] == "checkout"
    assert status["alerts"][0]["receivedAt"] == "2026-03-02T10:00:00.000Z"
    assert status["createdAt"] == "2026-03-02T10:00:00Z"
    assert [e["type"] for e in status["timeline"]] == ["alert-firing", "alert-firing"]
    assert all(e["actor"] == "paramedic/webhook" for e in status["timeline"])
    assert rec.added == [a.key for a in alerts] and not rec.duplicates


def test_joining_an_object_without_created_at_takes_its_creation_time():
    rec = records.record_alerts(incident(), parsing.parse_alertmanager(payload()), NOW, timeline_limit=50)
    assert rec.patch["status"]["createdAt"] == "2026-03-02T09:59:00Z"


def test_record_is_idempotent():
    alerts = parsing.parse_alertmanager(payload())
    inc = incident()
    first = records.record_alerts(inc, alerts, NOW, timeline_limit=50, created=True)
    inc["status"].update(first.patch["status"])
    again = records.record_alerts(inc, alerts, NOW + timedelta(seconds=5), timeline_limit=50)
    assert again.patch is None
    assert again.duplicates == [alerts[0].key]


def test_resolution_marks_and_detects_all_resolved():
    firing = parsing.parse_alertmanager(payload(am_alert(), am_alert(fingerprint="bb")))
    inc = incident()
    inc["status"].update(records.record_alerts(inc, firing, NOW, timeline_limit=50, created=True).patch["status"])
    resolved = parsing.parse_alertmanager(payload(am_alert(status="resolved", endsAt="2026-03-02T10:01:00Z")))
    later = NOW + timedelta(minutes=2)
    rec = records.record_alerts(inc, resolved, later, timeline_limit=50)
    assert rec.resolved == [resolved[0].key] and not rec.all_resolved and not rec.became_all_resolved
    entry = rec.patch["status"]["alerts"][0]
    assert entry["status"] == "resolved"
    assert entry["endsAt"] == "2026-03-02T10:01:00.000Z"
    assert entry["resolvedAt"] == "2026-03-02T10:02:00.000Z"
    inc["status"].update(rec.patch["status"])
    # a stale firing copy does not bring it back
    assert records.record_alerts(inc, firing[:1], later, timeline_limit=50).patch is None
    rest = parsing.parse_alertmanager(payload(am_alert(status="resolved", fingerprint="bb")))
    rec = records.record_alerts(inc, rest, later, timeline_limit=50)
    assert rec.all_resolved and rec.became_all_resolved
    types = [e["type"] for e in rec.patch["status"]["timeline"]]
    assert types[-2:] == ["alert-resolved", "alerts-resolved"]
    assert rec.patch["status"]["timeline"][-1]["message"] == "all alerts resolved"
    inc["status"].update(rec.patch["status"])
    again = records.record_alerts(inc, rest, later, timeline_limit=50)
    assert again.patch is None and again.all_resolved and not again.became_all_resolved


def test_many_alerts_make_one_summary_entry_and_timeline_is_bounded():
    alerts = parsing.parse_alertmanager(payload(*[am_alert(fingerprint=f"f{i}") for i in range(10)]))
    old = [{"time": "t", "type": "x", "actor": "a", "message": str(i)} for i in range(5)]
    rec = records.record_alerts(incident(timeline=old), alerts, NOW, timeline_limit=5)
    timeline = rec.patch["status"]["timeline"]
    assert len(timeline) == 5
    assert timeline[-1]["message"] == "10 alerts firing: HighErrorRate"
    assert timeline[0]["message"] == "0"  # the opening entry stays


def test_record_does_not_mutate_its_input():
    inc = incident(alerts=[{"key": "k", "status": "firing"}])
    snapshot = copy.deepcopy(inc)
    records.record_alerts(inc, parsing.parse_alertmanager(payload(am_alert(status="resolved"))), NOW, timeline_limit=5)
    assert inc == snapshot


def test_status_alerts_are_bounded_dropping_resolved_first():
    existing = [{"key": f"k{i}", "status": "resolved" if i % 2 else "firing"}
                for i in range(records.MAX_ALERTS_PER_INCIDENT)]
    rec = records.record_alerts(incident(alerts=existing), parsing.parse_alertmanager(payload()), NOW, timeline_limit=5)
    kept = rec.patch["status"]["alerts"]
    assert len(kept) == records.MAX_ALERTS_PER_INCIDENT
    assert kept[-1]["key"] == parsing.parse_alertmanager(payload())[0].key
    assert "k1" not in {a["key"] for a in kept} and "k0" in {a["key"] for a in kept}


def test_status_alerts_stay_within_the_byte_budget_keeping_keys():
    big_labels = {f"label{i}": "v" * 1000 for i in range(60)}
    existing = [{"key": f"k{i}", "status": "firing", "summary": "s", "labels": big_labels} for i in range(10)]
    new = parsing.parse_alertmanager(
        payload(am_alert(labels={"alertname": "A", **{f"l{i}": "w" * 1000 for i in range(60)}})))
    rec = records.record_alerts(incident(alerts=existing), new, NOW, timeline_limit=5)
    kept = rec.patch["status"]["alerts"]
    assert len(json.dumps(kept)) <= records.ALERTS_BYTES_BUDGET * 1.1
    assert [a["key"] for a in kept] == [f"k{i}" for i in range(10)] + [new[0].key]  # nothing forgotten
    assert "labels" not in kept[0] and kept[-1]["labels"]["l0"] == "w" * 1000      # the oldest shed detail


def test_build_incident():
    body = build_incident("shop", "checkout-critical-abc", service="checkout", severity="critical",
                          title="  checkout down ", description="d" * 9000, source="alertmanager", managed=False,
                          labels={"a": "b"}, runbook_url="https://r", now=NOW)
    assert body["apiVersion"] == "paramedic.dev/v1alpha1" and body["kind"] == "Incident"
    assert body["metadata"]["name"] == "checkout-critical-abc" and body["metadata"]["namespace"] == "shop"
    spec = body["spec"]
    assert spec["title"] == "checkout down" and spec["state"] == "open" and spec["managed"] is False
    assert len(spec["description"]) == MAX_DESCRIPTION
    assert spec["labels"] == {"a": "b"} and spec["runbookURL"] == "https://r"
    assert body["status"]["createdAt"] == "2026-03-02T10:00:00Z"
    with pytest.raises(ValueError):
        build_incident("shop", "x", service="s", severity="warning", title="t", description="", source="api",
                       managed=True, labels={}, runbook_url="", now=NOW)


def test_entries_store_labels_as_the_difference_from_the_incident_and_read_back_whole():
    first = am_alert()
    other = am_alert(fingerprint="bb", labels={**first["labels"], "instance": "10.0.0.2:8080", "zone": "b"})
    fewer = am_alert(fingerprint="cc", labels={k: v for k, v in first["labels"].items() if k != "instance"})
    alerts = parsing.parse_alertmanager(payload(first, other, fewer))
    inc = incident()
    inc["spec"]["labels"] = dict(first["labels"])  # as the webhook creates it: the first alert's labels
    status = records.record_alerts(inc, alerts, NOW, timeline_limit=50).patch["status"]
    entries = status["alerts"]
    assert "labels" not in entries[0] and "absentLabels" not in entries[0], "nothing beyond the incident's labels"
    assert entries[1]["labels"] == {"instance": "10.0.0.2:8080", "zone": "b"}
    assert entries[2]["absentLabels"] == ["instance"] and "labels" not in entries[2]
    assert [records.entry_labels(inc, e) for e in entries] == [dict(a.labels) for a in alerts]
    assert [records.entry_fingerprint(e) for e in entries] == [a.fingerprint for a in alerts]
    assert all("fingerprint" not in e for e in entries)
    # Entries written by earlier versions carry their fingerprint and every label.
    old = {"key": "ff@2026-03-02T10:00:00.000Z", "fingerprint": "ff", "labels": {"a": "b"}}
    assert records.entry_labels(inc, old) == {"a": "b"} and records.entry_fingerprint(old) == "ff"
