"""Routing by selector and service label (domain/alert_routing.py; the target and pod rules: test_routing.py)."""

from __future__ import annotations

import pytest

from paramedic.domain import alert_parse as parsing
from paramedic.domain import alert_routing as routing
from paramedic.domain.alert import Alert
from tests.unit.alert_samples import NOW, alert_with, am_alert, msvc, payload


def test_unknown_severity_falls_back_to_the_service_default():
    alert = parsing.parse_alertmanager(payload(am_alert(labels={"alertname": "X", "severity": "weird"})))[0]
    assert routing.incident_severity(alert, msvc("svc", severity="low")) == "low"
    assert routing.incident_severity(alert, None) == "high"
    alert = parsing.parse_alertmanager(payload(am_alert(labels={"alertname": "X", "severity": "warning"})))[0]
    assert routing.incident_severity(alert, msvc("svc", severity="low")) == "medium"


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
    assert routing.selector_matches(selector, LABELS) is matches


def alert_with(labels: dict) -> Alert:
    return Alert(fingerprint="f", status="firing", labels=labels, annotations={}, starts_at=NOW)


def test_match_service_selector_wins_over_name_and_ties_break_by_name():
    services = [
        msvc("checkout", selector={"matchLabels": {"team": "other"}}),
        msvc("zeta", selector={"matchLabels": {"team": "payments"}}),
        msvc("alpha", selector={"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}),
    ]
    alert = alert_with({**LABELS, "namespace": "shop"})
    assert routing.match_service(alert, services)["metadata"]["name"] == "alpha"
    assert routing.match_service(alert, list(reversed(services)))["metadata"]["name"] == "alpha"


def test_match_service_by_service_label():
    services = [msvc("checkout"), msvc("cart", selector={"matchLabels": {"team": "other"}})]
    assert routing.match_service(alert_with({**LABELS, "namespace": "shop"}), services)["metadata"]["name"] == "checkout"
    assert routing.match_service(alert_with({"alertname": "X", "service": "nope", "namespace": "shop"}), services) is None


def test_match_service_stays_in_the_alert_namespace():
    services = [msvc("checkout", ns="elsewhere")]
    assert routing.match_service(alert_with({**LABELS, "namespace": "shop"}), services) is None
