"""Random request bodies against the receiver backed by the real control plane: never a 5xx.

(Moved from tests/unit/test_webhook_http.py: it needs an API server, so `make unit` starts none.)
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from paramedic.webhook.app import create_app
from tests.unit.test_webhook_http import AUTH, make_settings

pytestmark = pytest.mark.e2e

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=25)
_label_text = st.text(max_size=12).filter(lambda s: s != "namespace")


@st.composite
def near_valid_payload(draw, namespace: str):
    """Alertmanager-shaped bodies with random holes and wrong types in them."""
    def maybe(strategy, valid):
        return draw(st.one_of(st.just(valid), strategy))

    alerts = []
    for _ in range(draw(st.integers(0, 3))):
        labels = draw(st.dictionaries(_label_text, st.text(max_size=12), max_size=4))
        labels["namespace"] = draw(st.sampled_from([namespace, "does-not-exist-x1"]))
        alert = {
            "status": maybe(_json, draw(st.sampled_from(["firing", "resolved"]))),
            "labels": maybe(_json, labels),
            "annotations": maybe(_json, {"summary": draw(st.text(max_size=20))}),
            "startsAt": maybe(_json, draw(st.sampled_from(["2026-03-02T10:00:00Z", "2026-03-02T10:00:00.5+02:00",
                                                           "0001-01-01T00:00:00Z"]))),
            "endsAt": maybe(_json, "0001-01-01T00:00:00Z"),
            "fingerprint": maybe(_json, draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16))),
        }
        for key in draw(st.lists(st.sampled_from(list(alert)), max_size=2)):
            alert.pop(key, None)
        alerts.append(alert)
    return {"version": maybe(_json, "4"), "status": "firing", "alerts": maybe(_json, alerts)}


def test_random_bodies_never_get_a_5xx(kube_client, namespace):
    app = create_app(make_settings(namespace=namespace, webhook_max_body_bytes=10**6), kube_client)
    c = app.test_client()

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(_json, near_valid_payload(namespace)), st.sampled_from(["/api/v1/alertmanager", "/api/v1/alerts"]))
    def check(body, path):
        resp = c.post(path, data=json.dumps(body), headers=AUTH, content_type="application/json")
        assert 200 <= resp.status_code < 500, (resp.status_code, resp.data, body)
        assert resp.get_json() is not None

    check()


# --- valid schemas, hostile values (issue 24) ----------------------------------------------------
#
# Alertmanager's and Grafana's payloads as they are sent, with long, non-ASCII, control-character
# and lone-surrogate text in every field an Incident copies: each alert is recorded (an incident
# where it belongs, or at the token's home) and the request is a 200.

_ugly = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", categories=("Cc", "Cf", "Zs", "So", "Lo")), min_size=1,
            max_size=40),
    st.integers(240, 1300).map(lambda n: "x" * n),  # around the CRD's 253, 256 and 1024
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "é" * 300, "🚑" * 200, "a,b=c", "x\ny",
                     "é" * 1100, "🚑" * 400, "\ud800" * 300]),  # multi-byte: limits count characters
)
_TIMES = ["2026-03-02T10:00:00Z", "2026-03-02T10:00:00.123+02:00", "2026-03-02T10:07:31.5Z"]


@st.composite
def hostile_alert(draw, namespace: str, grafana: bool) -> dict:
    labels = {"alertname": draw(_ugly)}
    for _ in range(draw(st.integers(0, 3))):
        labels[draw(_ugly.filter(bool))] = draw(_ugly)
    for name in draw(st.lists(st.sampled_from(["service", "severity", "pod", "deployment", "instance"]),
                              max_size=3, unique=True)):
        labels[name] = draw(_ugly)
    labels["namespace"] = draw(st.sampled_from([namespace, namespace, "kube-system", "n" * 70, "Not/A ns"]))
    if draw(st.booleans()):
        labels.update({f"extra{i}": "v" for i in range(draw(st.integers(60, 70)))})
    alert = {"status": draw(st.sampled_from(["firing", "firing", "resolved"])), "labels": labels,
             "annotations": {k: draw(_ugly) for k in draw(st.lists(st.sampled_from(
                 ["summary", "description", "message", "title", "runbook_url"]), max_size=3, unique=True))},
             "startsAt": draw(st.sampled_from(_TIMES)), "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": draw(st.one_of(st.just("http://prometheus:9090/graph"), _ugly))}
    if draw(st.booleans()):
        alert["fingerprint"] = draw(st.one_of(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16), _ugly))
    if grafana:
        alert.update({"silenceURL": draw(_ugly), "dashboardURL": "http://grafana/d/x", "panelURL": draw(_ugly),
                      "values": {draw(_ugly): draw(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                                             st.none()))},
                      "valueString": draw(_ugly), "orgId": 1})
    return alert


@st.composite
def hostile_payload(draw, namespace: str) -> dict:
    grafana = draw(st.booleans())
    alerts = draw(st.lists(hostile_alert(namespace, grafana), min_size=1, max_size=4))
    body = {"receiver": draw(_ugly), "status": "firing", "groupLabels": {"alertname": draw(_ugly)},
            "commonLabels": {}, "commonAnnotations": {"summary": draw(_ugly)}, "externalURL": draw(_ugly),
            "groupKey": draw(_ugly), "truncatedAlerts": 0, "alerts": alerts}
    if grafana:
        body.update({"version": "1", "orgId": 1, "title": draw(_ugly), "state": "alerting", "message": draw(_ugly)})
    else:
        body["version"] = "4"
    return body


def test_hostile_values_in_valid_payloads_are_all_recorded(kube_client, namespace):
    from paramedic import kube
    from paramedic.domain import alert_records as records

    app = create_app(make_settings(namespace=namespace, webhook_max_body_bytes=10**6,
                                   webhook_token_namespaces=[namespace]), kube_client)
    c = app.test_client()

    @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
    @given(hostile_payload(namespace))
    def check(body):
        # json.dumps escapes lone surrogates (\ud800), as a sender's JSON may carry them.
        resp = c.post("/api/v1/alertmanager", data=json.dumps(body), headers=AUTH, content_type="application/json")
        assert resp.status_code == 200, (resp.status_code, resp.data[:2000], body)
        out = resp.get_json()
        assert len(out["alerts"]) == len(body["alerts"])
        for sent, result in zip(body["alerts"], out["alerts"], strict=True):
            if result["outcome"] == "ignored":  # a resolution nobody recorded: nothing to resolve
                assert sent["status"] == "resolved", result
                continue
            assert result["outcome"] in ("recorded", "resolved", "duplicate"), result
            # Cutting alone makes every field fit: the API server never had to refuse one.
            assert result.get("rehomed") != "refused", result
            ns, name = result["incident"].split("/")
            assert ns == namespace, "where it belongs or at the token's home: nowhere else"
            inc = kube_client.get(kube.INCIDENTS, name, ns)
            assert result["key"] in records.alert_keys(inc), "recorded"

    check()
