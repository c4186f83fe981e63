"""Alert payloads (domain/alert_parse.py): Alertmanager, Grafana and generic alerts; refusals name their field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.domain import alert_parse as parsing
from paramedic.domain import alert_records as records
from paramedic.domain.alert import (
    MAX_ANNOTATION_VALUE,
    MAX_DESCRIPTION,
    MAX_FINGERPRINT,
    MAX_LABEL_NAME,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_SERVICE,
    PayloadError,
    labels_fingerprint,
)
from paramedic.ingest import build_incident
from tests.unit.alert_samples import NOW, am_alert, grafana_alert, grafana_payload, payload


def test_parses_an_alertmanager_payload():
    [alert] = parsing.parse_alertmanager(payload())
    assert alert.status == "firing"
    assert alert.fingerprint == "a1b2c3d4e5f60718"
    assert alert.starts_at == datetime(2026, 3, 2, 9, 58, 1, 123456, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time means "no end"
    assert alert.key == "a1b2c3d4e5f60718@2026-03-02T09:58:01.123Z"
    assert alert.severity == "critical"
    assert alert.namespace == "shop"
    assert alert.alertname == "HighErrorRate"
    assert alert.title == "5xx above 10%"
    assert alert.description == "checkout answers 5xx"
    assert alert.runbook_url == "https://runbooks.example.com/checkout"
    assert alert.source == "alertmanager"


@pytest.mark.parametrize("body, field, message", [
    ([], "body", "must be a JSON object"),
    ({"version": "4"}, "alerts", "required"),
    (payload(version="3"), "version", "unsupported"),
    (payload(alerts={}), "alerts", "must be a list"),
    (payload(status="burning"), "status", "firing"),
    (payload(truncatedAlerts=-1), "truncatedAlerts", "non-negative"),
    (payload(groupLabels=[]), "groupLabels", "object of strings"),
    (payload(am_alert(), am_alert(), "x"), "alerts[2]", "must be an object"),
    (payload(am_alert(), am_alert(), am_alert(labels={"a": 1})), "alerts[2].labels", "must be an object of strings"),
    (payload(am_alert(labels=None)), "alerts[0].labels", "must be an object of strings"),
    (payload(am_alert(status="ok")), "alerts[0].status", "firing"),
    (payload(am_alert(startsAt="yesterday")), "alerts[0].startsAt", "RFC 3339"),
    (payload(am_alert(startsAt=None)), "alerts[0].startsAt", "required"),
    (payload(am_alert(startsAt=12)), "alerts[0].startsAt", "RFC 3339"),
    (payload(am_alert(endsAt="2026-13-01T00:00:00Z")), "alerts[0].endsAt", "RFC 3339"),
    (payload(am_alert(annotations={"summary": ["x"]})), "alerts[0].annotations", "object of strings"),
    (payload(am_alert(fingerprint=7)), "alerts[0].fingerprint", "must be a string"),
    (payload(am_alert(generatorURL={})), "alerts[0].generatorURL", "must be a string"),
    (payload(am_alert(labels={"": "v"})), "alerts[0].labels", "must not be empty"),
])
def test_errors_name_the_field(body, field, message):
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(body)
    assert err.value.field == field
    assert message in err.value.message
    assert str(err.value).startswith(f"{field}: ")


def test_long_and_broken_text_is_cut_never_refused():
    """What an alert carries never refuses it (a refusal fails its whole request): the copies an
    Incident keeps are cut to the CRD's limits, and marked."""
    long_name = "A" * 300
    labels = {"alertname": long_name, "x": "v" * 1025, "bad": "\ud800", "n" * 300: "1",
              **{f"l{i}": "v" for i in range(70)}}
    [alert] = parsing.parse_alertmanager(payload(am_alert(labels=labels, fingerprint="f" * 200,
                                                      annotations={"summary": "s" * 9000})))
    assert alert.labels["x"] == "v" * 1025, "the alert's own labels are whole (fingerprint, routing)"
    assert alert.labels["bad"] == "\ufffd", "a lone surrogate becomes U+FFFD, as Go decodes it"
    assert alert.service_hint == "A" * 252 + "…" and len(alert.service_hint) == MAX_SERVICE
    assert alert.fingerprint.startswith("sha256-") and len(alert.fingerprint) <= MAX_FINGERPRINT
    [again] = parsing.parse_alertmanager(payload(am_alert(labels=labels, fingerprint="f" * 200)))
    assert again.fingerprint == alert.fingerprint, "the same on every re-send"
    body = build_incident("ns", "n", service=alert.service_hint, severity="high", title=alert.title,
                          description="d" * 9000, source="alertmanager", labels=alert.labels,
                          runbook_url="https://x/" + "u" * 3000, now=NOW)
    spec = body["spec"]
    assert len(spec["service"]) <= 253 and len(spec["title"]) <= 256 and len(spec["description"]) <= 8192
    assert spec["title"].endswith("…") and spec["description"].endswith("…")
    assert "runbookURL" not in spec, "a cut URL is a wrong URL: left out"
    assert len(spec["labels"]) == MAX_LABELS
    assert all(len(k) <= MAX_LABEL_NAME and len(v) <= MAX_LABEL_VALUE for k, v in spec["labels"].items())
    assert spec["labels"]["x"] == "v" * 1023 + "…"
    entry = records.alert_entry(alert, NOW, spec["labels"])
    assert len(entry["alertname"]) <= MAX_LABEL_VALUE and len(entry["summary"]) <= 1024
    assert all(len(v) <= MAX_LABEL_VALUE for v in entry.get("labels", {}).values())
    assert "x" not in entry.get("labels", {}), "the cut value equals spec.labels': not repeated"
    [message] = records._timeline_messages([alert], "firing")
    assert len(message) < 1000


def test_generic_alert_text_is_cut_not_refused():
    [alert] = parsing.parse_generic({"service": "s" * 300, "severity": "high", "message": "m" * 9000}, now=NOW)
    assert len(alert.labels["service"]) == MAX_SERVICE and alert.labels["service"].endswith("…")
    assert len(alert.annotations["summary"]) == MAX_MESSAGE


def test_parses_grafanas_payload_with_its_links_and_values():
    [alert] = parsing.parse_alertmanager(grafana_payload())
    assert alert.source == "grafana"
    assert alert.status == "firing" and alert.fingerprint == "c6eadffa33fcdf37"
    assert alert.starts_at == datetime(2026, 3, 2, 9, 58, 1, 123456, tzinfo=UTC)  # offset honoured
    assert alert.ends_at is None
    assert alert.links == {"silenceURL": grafana_alert()["silenceURL"], "dashboardURL": grafana_alert()["dashboardURL"],
                           "panelURL": grafana_alert()["panelURL"]}
    assert alert.values == {"B": 44.23943737541908, "C": 1.0}
    assert alert.runbook_url == "https://runbooks.example.com/mem"
    entry = records.alert_entry(alert, NOW)
    assert entry["silenceURL"].startswith("https://grafana.example.com/alerting/silence/")
    assert entry["dashboardURL"] and entry["panelURL"].endswith("viewPanel=2")
    rec = records.record_alerts({"metadata": {}, "spec": {"state": "open"}}, [alert], NOW, timeline_limit=50)
    [line] = rec.patch["status"]["timeline"]
    assert line["message"] == "alert firing: High memory usage [c6eadffa33fcdf37]: memory above 90% (B=44.2394, C=1)"


@pytest.mark.parametrize("text, expected", [
    ("2021-10-12T09:51:03.157076+02:00", datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)),
    ("2026-03-02T09:58:01.5-05:30", datetime(2026, 3, 2, 15, 28, 1, 500000, tzinfo=UTC)),
    ("2026-03-02T09:58:01.123456789Z", datetime(2026, 3, 2, 9, 58, 1, 123456, tzinfo=UTC)),
    ("2026-03-02T09:58:01+01:00", datetime(2026, 3, 2, 8, 58, 1, tzinfo=UTC)),
])
def test_times_with_fractions_keep_their_offset(text, expected):
    # Grafana writes local times with an offset after the fraction; its digits are not fractions.
    from paramedic.domain.timeutil import parse
    assert parse(text) == expected


def test_grafana_empty_links_and_null_values_are_left_out():
    raw = grafana_alert(dashboardURL="", panelURL="", values=None)
    del raw["silenceURL"]
    [alert] = parsing.parse_alertmanager(grafana_payload(raw))
    assert alert.links == {} and alert.values == {}
    entry = records.alert_entry(alert, NOW)
    assert not {"silenceURL", "dashboardURL", "panelURL"} & set(entry)
    [alert] = parsing.parse_alertmanager(grafana_payload(grafana_alert(values={"A": None})))
    assert records.format_values(alert.values) == "A=null"


@pytest.mark.parametrize("over, source", [
    ({"version": "1"}, "grafana"),
    ({"version": "2"}, "grafana"),            # a later Grafana version, same shape
    ({"version": "17"}, "grafana"),
    ({"version": "4"}, "grafana"),            # orgId says Grafana, whatever the number
])
def test_grafana_versions_one_and_later_are_accepted(over, source):
    [alert] = parsing.parse_alertmanager(grafana_payload(**over))
    assert alert.source == source


def test_grafana_version_one_without_org_id_is_still_grafana_and_alertmanager_stays_alertmanager():
    body = grafana_payload()
    del body["orgId"]
    assert parsing.parse_alertmanager(body)[0].source == "grafana"
    assert parsing.payload_source(payload()) == "alertmanager"
    assert parsing.payload_source({"alerts": []}) == "alertmanager"  # no version: Alertmanager's
    # Grafana's per-alert extras in an Alertmanager payload are not Alertmanager's: not recorded.
    [alert] = parsing.parse_alertmanager(payload(grafana_alert()))
    assert alert.source == "alertmanager" and alert.links == {} and alert.values == {}


def test_grafana_resolution_resolves():
    firing = parsing.parse_alertmanager(grafana_payload())
    inc = {"metadata": {}, "spec": {"state": "open"}}
    inc["status"] = records.record_alerts(inc, firing, NOW, timeline_limit=50).patch["status"]
    resolved = parsing.parse_alertmanager(grafana_payload(
        grafana_alert(status="resolved", endsAt="2026-03-02T10:05:00Z", values={"B": 12.5, "C": 0}),
        status="resolved", state="ok"))
    rec = records.record_alerts(inc, resolved, NOW, timeline_limit=50)
    assert rec.resolved == [firing[0].key] and rec.became_all_resolved
    messages = [e["message"] for e in rec.patch["status"]["timeline"]]
    assert messages[-2].endswith("(B=12.5, C=0)") and messages[-1] == "all alerts resolved"


@pytest.mark.parametrize("body, field, message", [
    (grafana_payload(version="x"), "version", "unsupported"),
    (grafana_payload(version="0"), "version", "unsupported"),
    (grafana_payload(version="-1"), "version", "unsupported"),
    (payload(version="2"), "version", "Grafana"),                # no orgId: not Grafana, not Alertmanager
    (payload(version="5"), "version", "unsupported"),
    (payload(version=4), "version", "must be a string"),
    (grafana_payload(version=1), "version", "must be a string"),
    (grafana_payload(orgId="1"), "orgId", "integer"),
    (grafana_payload(orgId=True), "orgId", "integer"),
    (grafana_payload(title=["x"]), "title", "string"),
    (grafana_payload(state=1), "state", "string"),
    (grafana_payload(message={}), "message", "string"),
    (grafana_payload(grafana_alert(values=[1])), "alerts[0].values", "object of numbers"),
    (grafana_payload(grafana_alert(values={"B": "44"})), "alerts[0].values.B", "number"),
    (grafana_payload(grafana_alert(values={"B": True})), "alerts[0].values.B", "number"),
    (grafana_payload(grafana_alert(silenceURL=3)), "alerts[0].silenceURL", "must be a string"),
    (grafana_payload(grafana_alert(dashboardURL=[])), "alerts[0].dashboardURL", "must be a string"),
    (grafana_payload(grafana_alert(imageURL=1)), "alerts[0].imageURL", "must be a string"),
])
def test_grafana_errors_name_the_field(body, field, message):
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(body)
    assert err.value.field == field
    assert message in err.value.message


def test_grafana_values_and_links_are_bounded():
    many = {f"R{i}": float(i) for i in range(100)}
    [alert] = parsing.parse_alertmanager(grafana_payload(grafana_alert(values=many, panelURL="https://g/" + "p" * 3000)))
    assert len(alert.values) == parsing.MAX_VALUES
    assert "panelURL" not in alert.links  # a cut URL is a wrong URL
    assert len(records.format_values(alert.values)) <= records.MAX_VALUES_TEXT
    # Old entries shed their links with the rest of their detail when status.alerts grows too large.
    entries = [dict(records.alert_entry(alert, NOW), key=f"k{i}", status="resolved", summary="s" * 900)
               for i in range(600)]
    kept = records._bounded(entries)
    assert "silenceURL" not in kept[0] and kept[-1].get("silenceURL")


def test_alert_count_is_limited():
    with pytest.raises(PayloadError, match="at most 3 alerts"):
        parsing.parse_alertmanager(payload(*[am_alert()] * 4), max_alerts=3)
    assert len(parsing.parse_alertmanager(payload(*[am_alert()] * 3), max_alerts=3)) == 3


def test_long_annotations_are_cut_not_refused():
    [alert] = parsing.parse_alertmanager(payload(am_alert(annotations={"description": "d" * 20000})))
    assert len(alert.annotations["description"]) == MAX_ANNOTATION_VALUE
    assert len(alert.description) <= MAX_DESCRIPTION


def test_empty_alert_list_is_valid():
    assert parsing.parse_alertmanager(payload(alerts=[])) == []


def test_genericalert_with():
    [alert] = parsing.parse_generic({"service": "frontend-api", "severity": "high", "message": "HTTP 5xx > 10%",
                                 "labels": {"env": "production"}, "timestamp": "2026-02-09T15:30:00Z"}, now=NOW)
    assert alert.labels == {"env": "production", "service": "frontend-api", "severity": "high"}
    assert alert.starts_at == datetime(2026, 2, 9, 15, 30, tzinfo=UTC)
    assert alert.status == "firing" and alert.source == "api"
    assert alert.title == "HTTP 5xx > 10%"
    assert alert.fingerprint == labels_fingerprint(alert.labels)
    assert alert.namespace is None  # the receiver's namespace applies


def test_generic_alert_without_timestamp_starts_now_and_namespace_from_labels():
    [alert] = parsing.parse_generic({"service": "api", "severity": "low", "message": "m",
                                 "labels": {"namespace": "shop"}}, now=NOW)
    assert alert.starts_at == NOW
    assert alert.namespace == "shop"


def test_generic_alerts_as_a_list():
    alerts = parsing.parse_generic([{"service": "a", "severity": "low", "message": "m"},
                                {"service": "b", "severity": "critical", "message": "n"}], now=NOW)
    assert [a.labels["service"] for a in alerts] == ["a", "b"]
    with pytest.raises(PayloadError) as err:
        parsing.parse_generic([{"service": "a", "severity": "low", "message": "m"}, {"service": "b"}], now=NOW)
    assert err.value.field == "[1].severity"


@pytest.mark.parametrize("body, field", [
    ({"severity": "high", "message": "m"}, "service"),
    ({"service": "", "severity": "high", "message": "m"}, "service"),
    ({"service": "x", "severity": "warning", "message": "m"}, "severity"),
    ({"service": "x", "message": "m"}, "severity"),
    ({"service": "x", "severity": "high"}, "message"),
    ({"service": "x", "severity": "high", "message": "m", "labels": "a=b"}, "labels"),
    ({"service": "x", "severity": "high", "message": "m", "timestamp": "noon"}, "timestamp"),
    ({"service": "x", "severity": "high", "message": "m", "status": "gone"}, "status"),
    ("just text", "body"),
])
def test_generic_errors_name_the_field(body, field):
    with pytest.raises(PayloadError) as err:
        parsing.parse_generic(body, now=NOW)
    assert err.value.field == field


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["alertmanager", "generic"]))
def test_any_json_either_parses_or_names_a_field(body, kind):
    try:
        if kind == "alertmanager":
            parsing.parse_alertmanager(body)
        else:
            parsing.parse_generic(body, now=NOW)
    except PayloadError as exc:
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=30), max_size=10))
def test_any_alert_labels_round_trip(labels):
    body = payload(am_alert(labels=labels, fingerprint=None))
    try:
        [alert] = parsing.parse_alertmanager(body)
    except PayloadError:
        return  # e.g. a lone surrogate
    assert dict(alert.labels) == labels
    assert alert.fingerprint == labels_fingerprint(labels)


def test_first_refusal_is_reported_in_payload_order():
    # The envelope's fields before the alert count, the count before any alert, alerts in order.
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(payload(*["x"] * 4, status="burning"), max_alerts=3)
    assert err.value.field == "status"
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(payload(*["x"] * 4), max_alerts=3)
    assert err.value.field == "alerts" and "at most 3 alerts" in err.value.message
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(payload(am_alert(), am_alert(status="ok", labels={"a": 1})))
    assert err.value.field == "alerts[1].status"
    with pytest.raises(PayloadError) as err:
        parsing.parse_alertmanager(payload(am_alert(labels={"a": "b"}, startsAt="noon", fingerprint=1)))
    assert err.value.field == "alerts[0].startsAt"


def test_missing_and_null_are_told_apart():
    body = payload(am_alert())
    del body["alerts"][0]["labels"]
    with pytest.raises(PayloadError, match=r"^alerts\[0\].labels: required$"):
        parsing.parse_alertmanager(body)
    with pytest.raises(PayloadError, match=r"^alerts\[0\].labels: must be an object of strings$"):
        parsing.parse_alertmanager(payload(am_alert(labels=None)))
    with pytest.raises(PayloadError, match=r"^status: must be"):
        parsing.parse_alertmanager(payload(status=None))  # absent is firing; null is refused
    assert parsing.parse_alertmanager(payload(am_alert(annotations=None)))[0].annotations == {}
