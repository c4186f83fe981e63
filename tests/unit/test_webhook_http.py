"""The receiver's HTTP contract: auth, content type, size, malformed bodies, availability.

Requests that never reach Kubernetes run against an app whose client points at
a closed loopback port (a real client that cannot connect): every answer here
is decided before, or by the failure of, the API call. The property test over
random bodies needs a real API server: tests/e2e/test_webhook_fuzz.py.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from devtools.cluster import free_port
from paramedic import kube
from paramedic.settings import Settings, SettingsError
from paramedic.webhook.app import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def unreachable_client() -> kube.KubeClient:
    port = free_port()  # nothing listens there
    return kube.KubeClient(kube.Connection(host=f"http://127.0.0.1:{port}", verify=False, token=lambda: None),
                           timeout=2)


def make_settings(**over) -> Settings:
    base = {"webhook_token": TOKEN, "namespace": "paramedic", "webhook_max_body_bytes": 4096}
    base.update(over)
    return Settings(**base)


@pytest.fixture
def client():
    app = create_app(make_settings(), unreachable_client())
    return app.test_client()


def alert_payload(n: int = 1, **over) -> dict:
    alerts = [{"status": "firing", "labels": {"alertname": "A", "service": "svc", "instance": str(i)},
               "annotations": {}, "startsAt": "2026-03-02T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "fingerprint": f"{i:016x}"} for i in range(n)]
    body = {"version": "4", "status": "firing", "receiver": "paramedic", "alerts": alerts}
    body.update(over)
    return body


# --- auth ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer ünïcode"},
])
def test_wrong_or_missing_token_is_401(client, headers):
    resp = client.post("/api/v1/alertmanager", json=alert_payload(), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="paramedic"')
    assert resp.get_json()["error"]


def test_auth_comes_before_any_other_check(client):
    resp = client.post("/api/v1/alertmanager", data=b"x" * 10000, content_type="text/plain")
    assert resp.status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_probes_and_metrics_are_open(client, path):
    assert client.get(path).status_code == 200


def test_metrics_exposition(client):
    resp = client.get("/metrics")
    assert b"paramedic_alerts_received_total" in resp.data
    assert resp.content_type.startswith("text/plain")


def test_readyz_reports_an_unreachable_api_server(client):
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "Retry-After" in resp.headers


def test_refuses_to_start_without_a_token():
    with pytest.raises(SettingsError, match="bearer token"):
        create_app(make_settings(webhook_token=""), unreachable_client())


def test_insecure_mode_accepts_requests_without_a_token():
    app = create_app(make_settings(webhook_token="", webhook_insecure=True), unreachable_client())
    resp = app.test_client().post("/api/v1/alertmanager", json=alert_payload(0))
    assert resp.status_code == 200


def test_insecure_mode_still_requires_a_configured_token():
    app = create_app(make_settings(webhook_insecure=True), unreachable_client())
    assert app.test_client().post("/api/v1/alertmanager", json=alert_payload(0)).status_code == 401


def test_token_file_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "token"
    path.write_text("first\n")
    app = create_app(make_settings(webhook_token="", webhook_token_file=str(path)), unreachable_client())
    c = app.test_client()

    def status(token: str) -> int:
        return c.post("/api/v1/alertmanager", json=alert_payload(0),
                      headers={"Authorization": f"Bearer {token}"}).status_code

    assert status("first") == 200
    path.write_text("second-token\n")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert status("first") == 401
    assert status("second-token") == 200
    path.unlink()  # a rotation in progress: keep the last good token
    assert status("second-token") == 200


def test_unreadable_token_file_refuses_to_start(tmp_path):
    with pytest.raises(SettingsError, match="TOKEN_FILE"):
        create_app(make_settings(webhook_token="", webhook_token_file=str(tmp_path / "missing")),
                   unreachable_client())


# --- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_wrong_content_type_is_415(client, content_type):
    resp = client.post("/api/v1/alertmanager", data=json.dumps(alert_payload()), headers=AUTH,
                       content_type=content_type or None)
    assert resp.status_code == 415


def test_json_with_charset_is_accepted(client):
    resp = client.post("/api/v1/alertmanager", data=json.dumps(alert_payload(0)), headers=AUTH,
                       content_type="application/json; charset=utf-8")
    assert resp.status_code == 200


def test_body_over_the_limit_is_413(client):
    big = alert_payload(1)
    big["alerts"][0]["annotations"] = {"description": "x" * 5000}
    resp = client.post("/api/v1/alertmanager", json=big, headers=AUTH)
    assert resp.status_code == 413
    assert "limit" in resp.get_json()["error"]


def test_chunked_body_over_the_limit_is_413(client):
    # No Content-Length: the cap applies to what is actually read.
    import io

    stream = io.BytesIO(b'{"alerts": [' + b" " * 10000 + b"]}")
    resp = client.post("/api/v1/alertmanager", input_stream=stream, headers={**AUTH, "Transfer-Encoding": "chunked"},
                       content_type="application/json",
                       environ_overrides={"wsgi.input_terminated": True})  # as gunicorn sets for chunked bodies
    assert resp.status_code == 413


def test_alert_count_limit_is_400(client):
    app = create_app(make_settings(webhook_max_alerts=2, webhook_max_body_bytes=10**6), unreachable_client())
    resp = app.test_client().post("/api/v1/alertmanager", json=alert_payload(3), headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json()["field"] == "alerts"


@pytest.mark.parametrize("body, field, fragment", [
    (b"", "body", "empty body"),
    (b"{", "body", "malformed JSON"),
    (b"{'single': 'quotes'}", "body", "malformed JSON"),
    (b'{"alerts": NaN}', "body", "NaN"),
    (b'{"alerts": [1e999999]}', "alerts[0]", "must be an object"),
    (b'{"alerts": "\xff\xfe"}', "body", "UTF-8"),
    (b"\xef\xbb\xbf{}", "body", "malformed JSON"),
    (b"[" * 100000 + b"]" * 100000, "body", ""),
    (b'{"alerts": [{"status": "firing", "labels": {"a": 1}, "startsAt": "2026-03-02T10:00:00Z"}]}',
     "alerts[0].labels", "must be an object of strings"),
    (b'{"alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-03-02T10:00:00Z"}, {"status": "x"}]}',
     "alerts[1].status", "firing"),
    (b'{"alerts": [], "version": 4}', "version", "unsupported"),
    # Grafana alerting's payload is "1" and later with orgId; any other version is still refused.
    (b'{"alerts": [], "version": "2"}', "version", "unsupported payload version '2'"),
    (b'{"alerts": [], "version": "v1", "orgId": 1}', "version", "unsupported"),
    (b'{"alerts": [], "version": "1", "orgId": "one"}', "orgId", "integer"),
    (b'{"version": "1", "orgId": 1, "alerts": [{"status": "firing", "labels": {}, "startsAt": '
     b'"2026-03-02T10:00:00+02:00", "values": {"B": "high"}}]}', "alerts[0].values.B", "number"),
])
def test_malformed_bodies_are_400_naming_the_field(client, body, field, fragment):
    app = create_app(make_settings(webhook_max_body_bytes=10**6), unreachable_client())
    resp = app.test_client().post("/api/v1/alertmanager", data=body, headers=AUTH, content_type="application/json")
    assert resp.status_code in (400, 413), resp.data
    if resp.status_code == 400:
        out = resp.get_json()
        assert out["field"] == field
        assert fragment in out["error"]


def test_generic_alert_errors_name_the_field(client):
    resp = client.post("/api/v1/alerts", json={"service": "x", "severity": "sev1", "message": "m"}, headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "severity: required: one of critical, high, medium, low", "field": "severity"}


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope", headers=AUTH).status_code == 404
    resp = client.get("/api/v1/alertmanager", headers=AUTH)
    assert resp.status_code == 405
    assert resp.get_json()["error"]


# --- availability ----------------------------------------------------------------


def test_unreachable_api_server_is_503_with_retry_after(client):
    resp = client.post("/api/v1/alertmanager", json=alert_payload(2), headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"].isdigit()
    assert "unavailable" in resp.get_json()["error"].lower()


def test_empty_alert_list_needs_no_api_server(client):
    resp = client.post("/api/v1/alertmanager", json=alert_payload(0), headers=AUTH)
    assert resp.status_code == 200
    assert resp.get_json()["received"] == 0


def test_no_report_route(client):
    # Alertmanager's token proves "may send alerts", never "may read any namespace's post-mortem":
    # reports are rendered with the reader's own credentials (kubectl paramedic report).
    assert client.get("/api/v1/incidents/shop/x/report.md").status_code == 401
    resp = client.get("/api/v1/incidents/shop/x/report.md", headers=AUTH)
    assert resp.status_code == 404, resp.get_json()


def test_read_floor_keeps_the_newest_resource_version_seen():
    floor = kube.ReadFloor()
    assert floor.params() == {}, "before anything is seen, reads are quorum reads"
    floor.see({"metadata": {"resourceVersion": "120"}})
    floor.see({"metadata": {"resourceVersion": "95"}})  # an older answer never lowers it
    floor.see({"metadata": {"resourceVersion": "not-a-number"}})
    floor.see(None)
    assert floor.params() == {"resourceVersion": "120", "resourceVersionMatch": "NotOlderThan"}
