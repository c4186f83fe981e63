"""Sample alerts and services shared by the alert modules' unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from paramedic.domain.alert import Alert

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


def alert_with(labels: dict) -> Alert:
    return Alert(fingerprint="f", status="firing", labels=labels, annotations={}, starts_at=NOW)
