"""Alert parsing, validation errors, routing, correlation names and recording on an incident."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.domain import alerts as dom
from paramedic.ingest import build_incident

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
T0 = "2026-03-02T09:58:01.123456789Z"


def am_alert(**over) -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                   "namespace": "shop", "instance": "10.0.0.1:8080"},
        "annotations": {"summary": "5xx above 10%", "description": "checkout answers 5xx",
                        "runbook_url": "https://runbooks.example.com/checkout"},
        "startsAt": T0,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    alert.update(over)
    return alert


def payload(*alerts: dict, **over) -> dict:
    body = {
        "version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0,
        "status": "firing", "receiver": "paramedic",
        "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [am_alert()],
    }
    body.update(over)
    return body


def msvc(name: str, ns: str = "shop", selector: dict | None = None, **spec) -> dict:
    body = {"metadata": {"name": name, "namespace": ns}, "spec": {"target": {"name": name}, **spec}}
    if selector is not None:
        body["spec"]["alertSelector"] = selector
    return body


# --- parsing -------------------------------------------------------------------


def test_parses_an_alertmanager_payload():
    [alert] = dom.parse_alertmanager(payload())
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


def test_key_is_stable_across_resends_and_distinct_per_start():
    a = dom.parse_alertmanager(payload())[0]
    b = dom.parse_alertmanager(payload())[0]
    c = dom.parse_alertmanager(payload(am_alert(startsAt="2026-03-02T10:30:00Z")))[0]
    assert a.key == b.key
    assert a.key != c.key


def test_missing_fingerprint_is_computed_like_prometheus():
    raw = am_alert()
    del raw["fingerprint"]
    [alert] = dom.parse_alertmanager(payload(raw))
    assert re.fullmatch(r"[0-9a-f]{16}", alert.fingerprint)
    # FNV-1a of the empty label set is the offset basis, as in prometheus/common/model.
    assert dom.labels_fingerprint({}) == "cbf29ce484222325"
    # Order of labels does not matter; values do.
    assert dom.labels_fingerprint({"a": "1", "b": "2"}) == dom.labels_fingerprint({"b": "2", "a": "1"})
    assert dom.labels_fingerprint({"a": "1"}) != dom.labels_fingerprint({"a": "2"})
    # A name/value split differently must not collide (the separator byte).
    assert dom.labels_fingerprint({"ab": "c"}) != dom.labels_fingerprint({"a": "bc"})


@pytest.mark.parametrize("label, expected", [
    ("critical", "critical"), ("CRITICAL", "critical"), ("page", "high"), ("error", "high"),
    ("high", "high"), ("warning", "medium"), ("medium", "medium"), ("info", "low"), ("low", "low"),
    ("bogus", None), ("", None),
])
def test_severity_mapping(label, expected):
    assert dom.normalize_severity(label) == expected


def test_unknown_severity_falls_back_to_the_service_default():
    alert = dom.parse_alertmanager(payload(am_alert(labels={"alertname": "X", "severity": "weird"})))[0]
    assert dom.incident_severity(alert, msvc("svc", severity="low")) == "low"
    assert dom.incident_severity(alert, None) == "high"
    alert = dom.parse_alertmanager(payload(am_alert(labels={"alertname": "X", "severity": "warning"})))[0]
    assert dom.incident_severity(alert, msvc("svc", severity="low")) == "medium"


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
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(body)
    assert err.value.field == field
    assert message in err.value.message
    assert str(err.value).startswith(f"{field}: ")


def test_long_and_broken_text_is_cut_never_refused():
    """What an alert carries never refuses it (a refusal fails its whole request): the copies an
    Incident keeps are cut to the CRD's limits, and marked."""
    long_name = "A" * 300
    labels = {"alertname": long_name, "x": "v" * 1025, "bad": "\ud800", "n" * 300: "1",
              **{f"l{i}": "v" for i in range(70)}}
    [alert] = dom.parse_alertmanager(payload(am_alert(labels=labels, fingerprint="f" * 200,
                                                      annotations={"summary": "s" * 9000})))
    assert alert.labels["x"] == "v" * 1025, "the alert's own labels are whole (fingerprint, routing)"
    assert alert.labels["bad"] == "\ufffd", "a lone surrogate becomes U+FFFD, as Go decodes it"
    assert alert.service_hint == "A" * 252 + "…" and len(alert.service_hint) == dom.MAX_SERVICE
    assert alert.fingerprint.startswith("sha256-") and len(alert.fingerprint) <= dom.MAX_FINGERPRINT
    [again] = dom.parse_alertmanager(payload(am_alert(labels=labels, fingerprint="f" * 200)))
    assert again.fingerprint == alert.fingerprint, "the same on every re-send"
    body = build_incident("ns", "n", service=alert.service_hint, severity="high", title=alert.title,
                          description="d" * 9000, source="alertmanager", labels=alert.labels,
                          runbook_url="https://x/" + "u" * 3000, now=NOW)
    spec = body["spec"]
    assert len(spec["service"]) <= 253 and len(spec["title"]) <= 256 and len(spec["description"]) <= 8192
    assert spec["title"].endswith("…") and spec["description"].endswith("…")
    assert "runbookURL" not in spec, "a cut URL is a wrong URL: left out"
    assert len(spec["labels"]) == dom.MAX_LABELS
    assert all(len(k) <= dom.MAX_LABEL_NAME and len(v) <= dom.MAX_LABEL_VALUE for k, v in spec["labels"].items())
    assert spec["labels"]["x"] == "v" * 1023 + "…"
    entry = dom.alert_entry(alert, NOW, spec["labels"])
    assert len(entry["alertname"]) <= dom.MAX_LABEL_VALUE and len(entry["summary"]) <= 1024
    assert all(len(v) <= dom.MAX_LABEL_VALUE for v in entry.get("labels", {}).values())
    assert "x" not in entry.get("labels", {}), "the cut value equals spec.labels': not repeated"
    [message] = dom._timeline_messages([alert], "firing")
    assert len(message) < 1000


def test_cut_marks_what_it_cuts():
    assert dom.cut("abc", 3) == "abc"
    assert dom.cut("abcd", 3) == "ab…"
    assert dom.stored_labels({"a" * 300: "b" * 2000}) == {"a" * 255 + "…": "b" * 1023 + "…"}
    assert dom.stored_labels({f"k{i}": "v" for i in range(5)}, 2) == {"k0": "v", "k1": "v"}


def test_generic_alert_text_is_cut_not_refused():
    [alert] = dom.parse_generic({"service": "s" * 300, "severity": "high", "message": "m" * 9000}, now=NOW)
    assert len(alert.labels["service"]) == dom.MAX_SERVICE and alert.labels["service"].endswith("…")
    assert len(alert.annotations["summary"]) == dom.MAX_MESSAGE


# --- Grafana alerting's payload ---------------------------------------------------


def grafana_alert(**over) -> dict:
    alert = {
        "status": "firing",
        "labels": {"alertname": "High memory usage", "grafana_folder": "shop", "namespace": "shop",
                   "service": "checkout", "team": "blue"},
        "annotations": {"summary": "memory above 90%", "runbook_url": "https://runbooks.example.com/mem"},
        "startsAt": "2026-03-02T10:58:01.123456+01:00",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://grafana.example.com/alerting/grafana/abc/view?orgId=1",
        "fingerprint": "c6eadffa33fcdf37",
        "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=a%3Db",
        "dashboardURL": "https://grafana.example.com/d/dash?orgId=1",
        "panelURL": "https://grafana.example.com/d/dash?orgId=1&viewPanel=2",
        "values": {"B": 44.23943737541908, "C": 1},
        "valueString": "[ var='B' labels={} value=44.23943737541908 ]",
    }
    alert.update(over)
    return alert


def grafana_payload(*alerts: dict, **over) -> dict:
    body = {
        "receiver": "paramedic", "status": "firing", "orgId": 1, "alerts": list(alerts) or [grafana_alert()],
        "groupLabels": {"alertname": "High memory usage"}, "commonLabels": {"team": "blue"},
        "commonAnnotations": {}, "externalURL": "https://grafana.example.com/", "version": "1",
        "groupKey": '{}/{}:{alertname="High memory usage"}', "truncatedAlerts": 0,
        "title": "[FIRING:1] High memory usage (shop blue)", "state": "alerting",
        "message": "**Firing**\n\nValue: B=44.2, C=1\n",
    }
    body.update(over)
    return body


def test_parses_grafanas_payload_with_its_links_and_values():
    [alert] = dom.parse_alertmanager(grafana_payload())
    assert alert.source == "grafana"
    assert alert.status == "firing" and alert.fingerprint == "c6eadffa33fcdf37"
    assert alert.starts_at == datetime(2026, 3, 2, 9, 58, 1, 123456, tzinfo=UTC)  # offset honoured
    assert alert.ends_at is None
    assert alert.links == {"silenceURL": grafana_alert()["silenceURL"], "dashboardURL": grafana_alert()["dashboardURL"],
                           "panelURL": grafana_alert()["panelURL"]}
    assert alert.values == {"B": 44.23943737541908, "C": 1.0}
    assert alert.runbook_url == "https://runbooks.example.com/mem"
    entry = dom.alert_entry(alert, NOW)
    assert entry["silenceURL"].startswith("https://grafana.example.com/alerting/silence/")
    assert entry["dashboardURL"] and entry["panelURL"].endswith("viewPanel=2")
    rec = dom.record_alerts({"metadata": {}, "spec": {"state": "open"}}, [alert], NOW, timeline_limit=50)
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
    [alert] = dom.parse_alertmanager(grafana_payload(raw))
    assert alert.links == {} and alert.values == {}
    entry = dom.alert_entry(alert, NOW)
    assert not {"silenceURL", "dashboardURL", "panelURL"} & set(entry)
    [alert] = dom.parse_alertmanager(grafana_payload(grafana_alert(values={"A": None})))
    assert dom.format_values(alert.values) == "A=null"


@pytest.mark.parametrize("over, source", [
    ({"version": "1"}, "grafana"),
    ({"version": "2"}, "grafana"),            # a later Grafana version, same shape
    ({"version": "17"}, "grafana"),
    ({"version": "4"}, "grafana"),            # orgId says Grafana, whatever the number
])
def test_grafana_versions_one_and_later_are_accepted(over, source):
    [alert] = dom.parse_alertmanager(grafana_payload(**over))
    assert alert.source == source


def test_grafana_version_one_without_org_id_is_still_grafana_and_alertmanager_stays_alertmanager():
    body = grafana_payload()
    del body["orgId"]
    assert dom.parse_alertmanager(body)[0].source == "grafana"
    assert dom.payload_source(payload()) == "alertmanager"
    assert dom.payload_source({"alerts": []}) == "alertmanager"  # no version: Alertmanager's
    # Grafana's per-alert extras in an Alertmanager payload are not Alertmanager's: not recorded.
    [alert] = dom.parse_alertmanager(payload(grafana_alert()))
    assert alert.source == "alertmanager" and alert.links == {} and alert.values == {}


def test_grafana_resolution_resolves():
    firing = dom.parse_alertmanager(grafana_payload())
    inc = {"metadata": {}, "spec": {"state": "open"}}
    inc["status"] = dom.record_alerts(inc, firing, NOW, timeline_limit=50).patch["status"]
    resolved = dom.parse_alertmanager(grafana_payload(
        grafana_alert(status="resolved", endsAt="2026-03-02T10:05:00Z", values={"B": 12.5, "C": 0}),
        status="resolved", state="ok"))
    rec = dom.record_alerts(inc, resolved, NOW, timeline_limit=50)
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
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(body)
    assert err.value.field == field
    assert message in err.value.message


def test_grafana_values_and_links_are_bounded():
    many = {f"R{i}": float(i) for i in range(100)}
    [alert] = dom.parse_alertmanager(grafana_payload(grafana_alert(values=many, panelURL="https://g/" + "p" * 3000)))
    assert len(alert.values) == dom.MAX_VALUES
    assert "panelURL" not in alert.links  # a cut URL is a wrong URL
    assert len(dom.format_values(alert.values)) <= dom.MAX_VALUES_TEXT
    # Old entries shed their links with the rest of their detail when status.alerts grows too large.
    entries = [dict(dom.alert_entry(alert, NOW), key=f"k{i}", status="resolved", summary="s" * 900)
               for i in range(600)]
    kept = dom._bounded(entries)
    assert "silenceURL" not in kept[0] and kept[-1].get("silenceURL")


def test_alert_count_is_limited():
    with pytest.raises(dom.PayloadError, match="at most 3 alerts"):
        dom.parse_alertmanager(payload(*[am_alert()] * 4), max_alerts=3)
    assert len(dom.parse_alertmanager(payload(*[am_alert()] * 3), max_alerts=3)) == 3


def test_long_annotations_are_cut_not_refused():
    [alert] = dom.parse_alertmanager(payload(am_alert(annotations={"description": "d" * 20000})))
    assert len(alert.annotations["description"]) == dom.MAX_ANNOTATION_VALUE
    assert len(alert.description) <= dom.MAX_DESCRIPTION


def test_empty_alert_list_is_valid():
    assert dom.parse_alertmanager(payload(alerts=[])) == []


def test_generic_alert():
    [alert] = dom.parse_generic({"service": "frontend-api", "severity": "high", "message": "HTTP 5xx > 10%",
                                 "labels": {"env": "production"}, "timestamp": "2026-02-09T15:30:00Z"}, now=NOW)
    assert alert.labels == {"env": "production", "service": "frontend-api", "severity": "high"}
    assert alert.starts_at == datetime(2026, 2, 9, 15, 30, tzinfo=UTC)
    assert alert.status == "firing" and alert.source == "api"
    assert alert.title == "HTTP 5xx > 10%"
    assert alert.fingerprint == dom.labels_fingerprint(alert.labels)
    assert alert.namespace is None  # the receiver's namespace applies


def test_generic_alert_without_timestamp_starts_now_and_namespace_from_labels():
    [alert] = dom.parse_generic({"service": "api", "severity": "low", "message": "m",
                                 "labels": {"namespace": "shop"}}, now=NOW)
    assert alert.starts_at == NOW
    assert alert.namespace == "shop"


def test_generic_alerts_as_a_list():
    alerts = dom.parse_generic([{"service": "a", "severity": "low", "message": "m"},
                                {"service": "b", "severity": "critical", "message": "n"}], now=NOW)
    assert [a.labels["service"] for a in alerts] == ["a", "b"]
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_generic([{"service": "a", "severity": "low", "message": "m"}, {"service": "b"}], now=NOW)
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
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_generic(body, now=NOW)
    assert err.value.field == field


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["alertmanager", "generic"]))
def test_any_json_either_parses_or_names_a_field(body, kind):
    try:
        if kind == "alertmanager":
            dom.parse_alertmanager(body)
        else:
            dom.parse_generic(body, now=NOW)
    except dom.PayloadError as exc:
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=30), max_size=10))
def test_any_alert_labels_round_trip(labels):
    body = payload(am_alert(labels=labels, fingerprint=None))
    try:
        [alert] = dom.parse_alertmanager(body)
    except dom.PayloadError:
        return  # e.g. a lone surrogate
    assert dict(alert.labels) == labels
    assert alert.fingerprint == dom.labels_fingerprint(labels)


def test_dedupe_within_a_request_keeps_resolution():
    firing = dom.parse_alertmanager(payload())[0]
    resolved = dom.parse_alertmanager(payload(am_alert(status="resolved", endsAt="2026-03-02T10:00:00Z")))[0]
    other = dom.parse_alertmanager(payload(am_alert(fingerprint="ffff")))[0]
    out = dom.dedupe([firing, other, firing, resolved])
    assert [a.key for a in out] == [firing.key, other.key]
    assert out[0].status == "resolved"


# --- routing -------------------------------------------------------------------


LABELS = {"alertname": "HighErrorRate", "service": "checkout", "team": "payments", "env": "prod"}


@pytest.mark.parametrize("selector, matches", [
    ({"matchLabels": {"service": "checkout"}}, True),
    ({"matchLabels": {"service": "checkout", "env": "dev"}}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"team": "payments"},
      "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Sideways"}]}, False),
    ({}, False),
    (None, False),
])
def test_selector(selector, matches):
    assert dom.selector_matches(selector, LABELS) is matches


def _alert(labels: dict) -> dom.Alert:
    return dom.Alert(fingerprint="f", status="firing", labels=labels, annotations={}, starts_at=NOW)


def test_match_service_selector_wins_over_name_and_ties_break_by_name():
    services = [
        msvc("checkout", selector={"matchLabels": {"team": "other"}}),
        msvc("zeta", selector={"matchLabels": {"team": "payments"}}),
        msvc("alpha", selector={"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}),
    ]
    alert = _alert({**LABELS, "namespace": "shop"})
    assert dom.match_service(alert, services)["metadata"]["name"] == "alpha"
    assert dom.match_service(alert, list(reversed(services)))["metadata"]["name"] == "alpha"


def test_match_service_by_service_label():
    services = [msvc("checkout"), msvc("cart", selector={"matchLabels": {"team": "other"}})]
    assert dom.match_service(_alert({**LABELS, "namespace": "shop"}), services)["metadata"]["name"] == "checkout"
    assert dom.match_service(_alert({"alertname": "X", "service": "nope", "namespace": "shop"}), services) is None


def test_match_service_stays_in_the_alert_namespace():
    services = [msvc("checkout", ns="elsewhere")]
    assert dom.match_service(_alert({**LABELS, "namespace": "shop"}), services) is None


def test_service_hint_for_unmatched_alerts():
    assert _alert({"service": "s", "alertname": "A"}).service_hint == "s"
    assert _alert({"alertname": "A"}).service_hint == "A"
    assert _alert({}).service_hint == "unknown"


# --- correlation and names -----------------------------------------------------


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_names_are_deterministic_per_window():
    a = dom.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC), 300)
    b = dom.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 4, 59, tzinfo=UTC), 300)
    c = dom.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 5, 0, tzinfo=UTC), 300)
    assert a == b != c
    assert a.startswith("checkout-critical-")
    assert dom.incident_name("checkout", "critical", NOW, 300, attempt=2) == \
        dom.incident_name("checkout", "critical", NOW, 300) + "-2"
    assert dom.incident_name("checkout", "high", NOW, 300) != dom.incident_name("checkout", "low", NOW, 300)


def test_bucket_is_compact():
    name = dom.incident_name("checkout", "critical", NOW, 300)
    assert len(name.rsplit("-", 1)[1]) <= 6


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=400), st.sampled_from(dom.SEVERITIES),
       st.integers(min_value=0, max_value=4_000_000_000), st.integers(min_value=1, max_value=100))
def test_names_are_always_valid(service, severity, epoch, attempt):
    name = dom.incident_name(service, severity, datetime.fromtimestamp(epoch, UTC), 300, attempt)
    assert DNS1123.match(name) and len(name) <= 253


def test_distinct_services_get_distinct_names():
    names = {dom.incident_name(s, "high", NOW, 300) for s in ("My_Svc", "my-svc", "my.svc", "MY SVC", "a" * 300,
                                                                "a" * 301)}
    assert len(names) == 6


def test_field_selector_escapes_values():
    assert dom.active_field_selector("checkout", "high") == \
        "spec.service=checkout,spec.severity=high,spec.state!=resolved,spec.state!=closed"
    assert dom.active_field_selector("a,b=c\\", "low").startswith("spec.service=a\\,b\\=c\\\\,")


# --- recording on an incident ---------------------------------------------------


def incident(alerts: list | None = None, state: str = "open", **status) -> dict:
    body = build_incident("shop", "checkout-critical-x", service="checkout", severity="critical", title="t",
                          description="", source="alertmanager", managed=True, labels={}, runbook_url="", now=NOW)
    body["metadata"]["resourceVersion"] = "1"
    body["metadata"]["creationTimestamp"] = "2026-03-02T09:59:00Z"
    body["spec"]["state"] = state
    body["status"] = {"alerts": alerts or [], **status}
    return body


def test_record_new_alerts_and_created_at():
    alerts = dom.parse_alertmanager(payload(am_alert(), am_alert(fingerprint="bb")))
    rec = dom.record_alerts(incident(), alerts, NOW, timeline_limit=50, created=True)
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
    rec = dom.record_alerts(incident(), dom.parse_alertmanager(payload()), NOW, timeline_limit=50)
    assert rec.patch["status"]["createdAt"] == "2026-03-02T09:59:00Z"


def test_record_is_idempotent():
    alerts = dom.parse_alertmanager(payload())
    inc = incident()
    first = dom.record_alerts(inc, alerts, NOW, timeline_limit=50, created=True)
    inc["status"].update(first.patch["status"])
    again = dom.record_alerts(inc, alerts, NOW + timedelta(seconds=5), timeline_limit=50)
    assert again.patch is None
    assert again.duplicates == [alerts[0].key]


def test_resolution_marks_and_detects_all_resolved():
    firing = dom.parse_alertmanager(payload(am_alert(), am_alert(fingerprint="bb")))
    inc = incident()
    inc["status"].update(dom.record_alerts(inc, firing, NOW, timeline_limit=50, created=True).patch["status"])
    resolved = dom.parse_alertmanager(payload(am_alert(status="resolved", endsAt="2026-03-02T10:01:00Z")))
    later = NOW + timedelta(minutes=2)
    rec = dom.record_alerts(inc, resolved, later, timeline_limit=50)
    assert rec.resolved == [resolved[0].key] and not rec.all_resolved and not rec.became_all_resolved
    entry = rec.patch["status"]["alerts"][0]
    assert entry["status"] == "resolved"
    assert entry["endsAt"] == "2026-03-02T10:01:00.000Z"
    assert entry["resolvedAt"] == "2026-03-02T10:02:00.000Z"
    inc["status"].update(rec.patch["status"])
    # a stale firing copy does not bring it back
    assert dom.record_alerts(inc, firing[:1], later, timeline_limit=50).patch is None
    rest = dom.parse_alertmanager(payload(am_alert(status="resolved", fingerprint="bb")))
    rec = dom.record_alerts(inc, rest, later, timeline_limit=50)
    assert rec.all_resolved and rec.became_all_resolved
    types = [e["type"] for e in rec.patch["status"]["timeline"]]
    assert types[-2:] == ["alert-resolved", "alerts-resolved"]
    assert rec.patch["status"]["timeline"][-1]["message"] == "all alerts resolved"
    inc["status"].update(rec.patch["status"])
    again = dom.record_alerts(inc, rest, later, timeline_limit=50)
    assert again.patch is None and again.all_resolved and not again.became_all_resolved


def test_many_alerts_make_one_summary_entry_and_timeline_is_bounded():
    alerts = dom.parse_alertmanager(payload(*[am_alert(fingerprint=f"f{i}") for i in range(10)]))
    old = [{"time": "t", "type": "x", "actor": "a", "message": str(i)} for i in range(5)]
    rec = dom.record_alerts(incident(timeline=old), alerts, NOW, timeline_limit=5)
    timeline = rec.patch["status"]["timeline"]
    assert len(timeline) == 5
    assert timeline[-1]["message"] == "10 alerts firing: HighErrorRate"
    assert timeline[0]["message"] == "0"  # the opening entry stays


def test_record_does_not_mutate_its_input():
    inc = incident(alerts=[{"key": "k", "status": "firing"}])
    snapshot = copy.deepcopy(inc)
    dom.record_alerts(inc, dom.parse_alertmanager(payload(am_alert(status="resolved"))), NOW, timeline_limit=5)
    assert inc == snapshot


def test_status_alerts_are_bounded_dropping_resolved_first():
    existing = [{"key": f"k{i}", "status": "resolved" if i % 2 else "firing"} for i in range(dom.MAX_ALERTS_PER_INCIDENT)]
    rec = dom.record_alerts(incident(alerts=existing), dom.parse_alertmanager(payload()), NOW, timeline_limit=5)
    kept = rec.patch["status"]["alerts"]
    assert len(kept) == dom.MAX_ALERTS_PER_INCIDENT
    assert kept[-1]["key"] == dom.parse_alertmanager(payload())[0].key
    assert "k1" not in {a["key"] for a in kept} and "k0" in {a["key"] for a in kept}


def test_status_alerts_stay_within_the_byte_budget_keeping_keys():
    big_labels = {f"label{i}": "v" * 1000 for i in range(60)}
    existing = [{"key": f"k{i}", "status": "firing", "summary": "s", "labels": big_labels} for i in range(10)]
    new = dom.parse_alertmanager(payload(am_alert(labels={"alertname": "A", **{f"l{i}": "w" * 1000 for i in range(60)}})))
    rec = dom.record_alerts(incident(alerts=existing), new, NOW, timeline_limit=5)
    kept = rec.patch["status"]["alerts"]
    assert len(json.dumps(kept)) <= dom.ALERTS_BYTES_BUDGET * 1.1
    assert [a["key"] for a in kept] == [f"k{i}" for i in range(10)] + [new[0].key]  # nothing forgotten
    assert "labels" not in kept[0] and kept[-1]["labels"]["l0"] == "w" * 1000      # the oldest shed detail


# --- the incident body ------------------------------------------------------------


def test_build_incident():
    body = build_incident("shop", "checkout-critical-abc", service="checkout", severity="critical",
                          title="  checkout down ", description="d" * 9000, source="alertmanager", managed=False,
                          labels={"a": "b"}, runbook_url="https://r", now=NOW)
    assert body["apiVersion"] == "paramedic.dev/v1alpha1" and body["kind"] == "Incident"
    assert body["metadata"]["name"] == "checkout-critical-abc" and body["metadata"]["namespace"] == "shop"
    spec = body["spec"]
    assert spec["title"] == "checkout down" and spec["state"] == "open" and spec["managed"] is False
    assert len(spec["description"]) == dom.MAX_DESCRIPTION
    assert spec["labels"] == {"a": "b"} and spec["runbookURL"] == "https://r"
    assert body["status"]["createdAt"] == "2026-03-02T10:00:00Z"
    with pytest.raises(ValueError):
        build_incident("shop", "x", service="s", severity="warning", title="t", description="", source="api",
                       managed=True, labels={}, runbook_url="", now=NOW)


def test_entries_store_labels_as_the_difference_from_the_incident_and_read_back_whole():
    first = am_alert()
    other = am_alert(fingerprint="bb", labels={**first["labels"], "instance": "10.0.0.2:8080", "zone": "b"})
    fewer = am_alert(fingerprint="cc", labels={k: v for k, v in first["labels"].items() if k != "instance"})
    alerts = dom.parse_alertmanager(payload(first, other, fewer))
    inc = incident()
    inc["spec"]["labels"] = dict(first["labels"])  # as the webhook creates it: the first alert's labels
    status = dom.record_alerts(inc, alerts, NOW, timeline_limit=50).patch["status"]
    entries = status["alerts"]
    assert "labels" not in entries[0] and "absentLabels" not in entries[0], "nothing beyond the incident's labels"
    assert entries[1]["labels"] == {"instance": "10.0.0.2:8080", "zone": "b"}
    assert entries[2]["absentLabels"] == ["instance"] and "labels" not in entries[2]
    assert [dom.entry_labels(inc, e) for e in entries] == [dict(a.labels) for a in alerts]
    assert [dom.entry_fingerprint(e) for e in entries] == [a.fingerprint for a in alerts]
    assert all("fingerprint" not in e for e in entries)
    # Entries written by earlier versions carry their fingerprint and every label.
    old = {"key": "ff@2026-03-02T10:00:00.000Z", "fingerprint": "ff", "labels": {"a": "b"}}
    assert dom.entry_labels(inc, old) == {"a": "b"} and dom.entry_fingerprint(old) == "ff"


def test_first_refusal_is_reported_in_payload_order():
    # The envelope's fields before the alert count, the count before any alert, alerts in order.
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(payload(*["x"] * 4, status="burning"), max_alerts=3)
    assert err.value.field == "status"
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(payload(*["x"] * 4), max_alerts=3)
    assert err.value.field == "alerts" and "at most 3 alerts" in err.value.message
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(payload(am_alert(), am_alert(status="ok", labels={"a": 1})))
    assert err.value.field == "alerts[1].status"
    with pytest.raises(dom.PayloadError) as err:
        dom.parse_alertmanager(payload(am_alert(labels={"a": "b"}, startsAt="noon", fingerprint=1)))
    assert err.value.field == "alerts[0].startsAt"


def test_missing_and_null_are_told_apart():
    body = payload(am_alert())
    del body["alerts"][0]["labels"]
    with pytest.raises(dom.PayloadError, match=r"^alerts\[0\].labels: required$"):
        dom.parse_alertmanager(body)
    with pytest.raises(dom.PayloadError, match=r"^alerts\[0\].labels: must be an object of strings$"):
        dom.parse_alertmanager(payload(am_alert(labels=None)))
    with pytest.raises(dom.PayloadError, match=r"^status: must be"):
        dom.parse_alertmanager(payload(status=None))  # absent is firing; null is refused
    assert dom.parse_alertmanager(payload(am_alert(annotations=None)))[0].annotations == {}
