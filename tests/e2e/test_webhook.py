"""The receiver, served by werkzeug on loopback, writing Incidents into the real control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from devtools.cluster import free_port
from paramedic import entries_io, kube, metrics
from paramedic.domain import alert_naming as naming
from paramedic.domain import alert_records as records
from paramedic.domain import entries
from paramedic.domain.alert import labels_fingerprint
from paramedic.domain.timeutil import iso_ms, parse
from paramedic.settings import Settings
from paramedic.webhook.app import create_app
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e

TOKEN = "e2e-" + uuid.uuid4().hex


class Receiver:
    """The WSGI app on a free loopback port; `app` can be swapped while it runs; answers are logged."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.log: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.port = free_port()

        def wsgi(environ: dict, start_response: Callable) -> Any:
            path = environ.get("PATH_INFO", "")

            def recording_start(status: str, headers: list, exc_info: Any = None) -> Any:
                with self._lock:
                    self.log.append((path, int(status.split()[0])))
                return start_response(status, headers, exc_info)

            return self.app(environ, recording_start)

        self.server = make_server("127.0.0.1", self.port, wsgi, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def statuses(self, path: str = "/api/v1/alertmanager") -> list[int]:
        with self._lock:
            return [s for p, s in self.log if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver_settings(namespace: str, **over: Any) -> Settings:
    # The admin of these set-ups trusts their one Alertmanager to trigger remediation: turned
    # on explicitly (it is off by default, see test_tenant_receiver).
    return Settings(**{"webhook_token": TOKEN, "namespace": namespace, "webhook_token_remediate": True, **over})


@pytest.fixture
def receiver(kube_client, namespace):
    r = Receiver(create_app(receiver_settings(namespace), kube_client))
    yield r
    r.stop()


@pytest.fixture
def everywhere_receiver(kube_client, namespace):
    """A single-team set-up: the admin explicitly lets the token write every namespace (`*`)."""
    r = Receiver(create_app(receiver_settings(namespace, webhook_token_namespaces=["*"]), kube_client))
    yield r
    r.stop()


@pytest.fixture
def http():
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


def am_alert(name: str = "HighErrorRate", status: str = "firing", starts: datetime | None = None,
             **labels: str) -> dict:
    labels = {"alertname": name, "severity": "critical", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {labels.get('instance', '?')}"},
        "startsAt": iso_ms(starts or datetime.now(UTC)),
        "endsAt": iso_ms(datetime.now(UTC)) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": labels_fingerprint(labels),
    }


def am_payload(*alerts: dict) -> dict:
    return {"version": "4", "receiver": "paramedic", "status": "firing", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "truncatedAlerts": 0, "alerts": list(alerts)}


def resolved(alert: dict) -> dict:
    return {**alert, "status": "resolved", "endsAt": iso_ms(datetime.now(UTC))}


def make_service(client: kube.KubeClient, ns: str, name: str, **spec: Any) -> dict:
    body = {"metadata": {"name": name}, "spec": {"target": {"name": name},
                                                 "alertSelector": {"matchLabels": {"app": name}}, **spec}}
    return client.create(kube.MONITORED_SERVICES, body, ns)


def incidents(client: kube.KubeClient, ns: str) -> list[dict]:
    return sorted(client.list(kube.INCIDENTS, ns), key=lambda o: o["metadata"]["name"])


def post(http: httpx.Client, receiver: Receiver, body: Any, path: str = "/api/v1/alertmanager") -> dict:
    resp = http.post(receiver.url + path, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counter(metric: Any, *labels: str) -> float:
    return (metric.labels(*labels) if labels else metric)._value.get()


def test_a_group_of_alerts_becomes_one_incident_once(kube_client, namespace, receiver, http):
    make_service(kube_client, namespace, "checkout", severity="high", runbookURL="https://runbooks/checkout")
    starts = datetime.now(UTC)
    alerts = [am_alert(app="checkout", instance=f"10.0.0.{i}", namespace=namespace, starts=starts) for i in range(3)]

    out = post(http, receiver, am_payload(*alerts))
    assert out["received"] == 3 and out["created"] == 1 and out["joined"] == 3 and out["deduplicated"] == 0
    [inc] = incidents(kube_client, namespace)
    assert out["incidents"] == [f"{namespace}/{inc['metadata']['name']}"]
    assert inc["metadata"]["name"] == naming.incident_name("checkout", "critical", starts, 300)
    spec, status = inc["spec"], inc["status"]
    assert spec["service"] == "checkout" and spec["severity"] == "critical" and spec["managed"] is True
    assert spec["source"] == "alertmanager" and spec["state"] == "open"
    assert spec["title"] == "HighErrorRate on 10.0.0.0"
    assert spec["runbookURL"] == "https://runbooks/checkout"
    assert status["createdAt"]
    assert sorted(records.entry_labels(inc, a)["instance"] for a in status["alerts"]) == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]
    assert all(a["status"] == "firing" for a in status["alerts"])
    assert [e["type"] for e in status["timeline"]] == ["alert-firing"] * 3

    # Alertmanager re-sends the group (repeat_interval, HA peers): nothing changes, not even resourceVersion.
    dedup_before = counter(metrics.ALERTS_DEDUPLICATED)
    for _ in range(2):
        again = post(http, receiver, am_payload(*alerts))
        assert again["created"] == 0 and again["joined"] == 0 and again["deduplicated"] == 3
    [same] = incidents(kube_client, namespace)
    assert same["metadata"]["resourceVersion"] == inc["metadata"]["resourceVersion"]
    assert counter(metrics.ALERTS_DEDUPLICATED) == dedup_before + 6

    # A new alert of the same service and severity, later and in another window, joins the active incident.
    later = am_alert(app="checkout", instance="10.0.0.9", namespace=namespace, starts=starts + timedelta(minutes=7))
    out = post(http, receiver, am_payload(later, *alerts))
    assert out["created"] == 0 and out["joined"] == 1 and out["deduplicated"] == 3
    [inc] = incidents(kube_client, namespace)
    assert len(inc["status"]["alerts"]) == 4 and len(inc["status"]["timeline"]) == 4


RECEIVER_TYPES = ("alert-firing", "alert-resolved", "alerts-resolved")


def receiver_entries(inc: dict) -> list[str]:
    """The types of the timeline entries the receiver wrote (the operator writes others beside them)."""
    return [e["type"] for e in inc["status"]["timeline"] if e["type"] in RECEIVER_TYPES]


def resolved_by_operator(inc: dict) -> bool:
    """The operator's planner moved the incident to resolved because all its alerts are, and recorded the move."""
    return (inc["spec"]["state"] == "resolved" and inc["status"]["observedState"] == "resolved"
            and inc["metadata"]["annotations"]["paramedic.dev/actor"] == "paramedic/webhook"
            and all(a["status"] == "resolved" for a in inc["status"]["alerts"])
            and any(e["type"] == "state" and e["actor"] == "paramedic/webhook"
                    and e["message"] == "open → resolved: all alerts resolved" for e in inc["status"]["timeline"]))


def test_resolved_alerts_are_recorded_and_auto_resolve(kube_client, namespace, operator_factory, receiver, http):
    # The receiver records the resolutions; the operator alone moves spec.state (issue #25).
    operator_factory(namespace)
    make_service(kube_client, namespace, "cart")
    starts = datetime.now(UTC)
    alerts = [am_alert(app="cart", instance=str(i), namespace=namespace, starts=starts) for i in range(2)]
    post(http, receiver, am_payload(*alerts))
    [inc] = incidents(kube_client, namespace)
    name = inc["metadata"]["name"]

    out = post(http, receiver, am_payload(resolved(alerts[0]), alerts[1]))
    assert out["resolved"] == 1 and out["deduplicated"] == 1 and out["autoResolvable"] == 0
    inc = kube_client.get(kube.INCIDENTS, name, namespace)
    by_instance = {records.entry_labels(inc, a)["instance"]: a for a in inc["status"]["alerts"]}
    assert by_instance["0"]["status"] == "resolved" and by_instance["0"]["resolvedAt"] and by_instance["0"]["endsAt"]
    assert by_instance["1"]["status"] == "firing"
    assert inc["spec"]["state"] == "open"

    out = post(http, receiver, am_payload(resolved(alerts[0]), resolved(alerts[1])))
    assert out["resolved"] == 1 and out["deduplicated"] == 1 and out["autoResolvable"] == 1
    inc = wait_object(kube_client, kube.INCIDENTS, name, namespace, resolved_by_operator, 30,
                      "the operator resolving the incident whose alerts all resolved")
    assert receiver_entries(inc) == ["alert-firing", "alert-firing", "alert-resolved", "alert-resolved",
                                     "alerts-resolved"]
    [note] = [e for e in inc["status"]["timeline"] if e["type"] == "alerts-resolved"]
    assert note["message"] == "all alerts resolved"

    # The resolution re-sent: recorded once.
    out = post(http, receiver, am_payload(resolved(alerts[0]), resolved(alerts[1])))
    assert out["deduplicated"] == 2 and out["resolved"] == 0
    assert receiver_entries(kube_client.get(kube.INCIDENTS, name, namespace)) == receiver_entries(inc)

    # A late firing copy of a recorded alert is a duplicate, even though its incident is resolved.
    out = post(http, receiver, am_payload(alerts[0]))
    assert out["deduplicated"] == 1 and out["created"] == 0
    # A new alert of the same window opens a successor: the resolved incident stays resolved.
    fresh = am_alert(app="cart", instance="new", namespace=namespace, starts=starts)
    out = post(http, receiver, am_payload(fresh))
    assert out["created"] == 1 and out["incidents"] == [f"{namespace}/{name}-2"]
    assert kube_client.get(kube.INCIDENTS, name, namespace)["spec"]["state"] == "resolved"
    # ... and its resolution finds it there, and the operator resolves it too.
    out = post(http, receiver, am_payload(resolved(fresh)))
    assert out["resolved"] == 1 and out["autoResolvable"] == 1
    wait_object(kube_client, kube.INCIDENTS, f"{name}-2", namespace, resolved_by_operator, 30,
                "the operator resolving the successor")


def test_auto_resolve_off_keeps_the_incident_open(kube_client, namespace, operator_factory, receiver, http):
    operator_factory(namespace)
    make_service(kube_client, namespace, "search", autoResolve=False)
    alert = am_alert(app="search", namespace=namespace)
    post(http, receiver, am_payload(alert))
    out = post(http, receiver, am_payload(resolved(alert)))
    assert out["resolved"] == 1 and out["autoResolvable"] == 0
    [inc] = incidents(kube_client, namespace)
    assert inc["status"]["alerts"][0]["status"] == "resolved"
    assert "autoResolve is off" in inc["status"]["timeline"][-1]["message"]
    # A barrier instead of a timed wait: a comment written after the resolution, once the
    # operator has recorded it, proves it planned on an incident whose alerts all resolved.
    name = inc["metadata"]["name"]
    me = kube_client.user_name()
    entries_io.append(kube_client, namespace, name, "comments",
                      lambda _inc: entries.comment_entry(me, datetime.now(UTC), "barrier"))
    inc = wait_object(kube_client, kube.INCIDENTS, name, namespace,
                      lambda o: (o.get("status") or {}).get("recorded", {}).get("comments") == 1, 30,
                      "the operator recording the comment written after the resolution")
    assert inc["spec"]["state"] == "open" and inc["status"]["observedState"] == "open"


def test_a_resolution_nobody_recorded_creates_nothing(kube_client, namespace, receiver, http):
    out = post(http, receiver, am_payload(resolved(am_alert(app="ghost", namespace=namespace))))
    assert out["ignored"] == 1 and out["created"] == 0
    assert incidents(kube_client, namespace) == []


def test_concurrent_identical_posts_create_exactly_one_incident(kube_client, namespace, receiver):
    make_service(kube_client, namespace, "payments")
    body = am_payload(*[am_alert(app="payments", instance=str(i), namespace=namespace) for i in range(5)])
    barrier = threading.Barrier(8)

    def send(_: int) -> dict:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            barrier.wait()
            resp = c.post(receiver.url + "/api/v1/alertmanager", json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    assert sum(r["created"] for r in results) == 1
    assert sum(r["joined"] for r in results) == 5
    assert sum(r["deduplicated"] for r in results) == 5 * 7
    [inc] = incidents(kube_client, namespace)
    keys = [a["key"] for a in inc["status"]["alerts"]]
    assert len(keys) == len(set(keys)) == 5
    assert len(inc["status"]["timeline"]) <= 5 and inc["status"]["createdAt"]


def test_concurrent_different_alerts_are_all_kept(kube_client, namespace, receiver):
    make_service(kube_client, namespace, "orders")
    starts = datetime.now(UTC)
    barrier = threading.Barrier(8)

    def send(i: int) -> list[int]:
        body = am_payload(*[am_alert(app="orders", instance=f"{i}-{j}", namespace=namespace, starts=starts)
                            for j in range(3)])
        codes = []
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            barrier.wait()
            for _ in range(5):  # as Alertmanager does: a 503 is retried
                codes.append(c.post(receiver.url + "/api/v1/alertmanager", json=body).status_code)
                if codes[-1] == 200:
                    break
        return codes

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert all(codes[-1] == 200 and set(codes) <= {200, 503} for codes in answers), answers
    [inc] = incidents(kube_client, namespace)
    instances = [records.entry_labels(inc, a)["instance"] for a in inc["status"]["alerts"]]
    assert sorted(instances) == sorted(f"{i}-{j}" for i in range(8) for j in range(3))


def test_unmanaged_alerts_are_kept_in_their_namespace_or_the_receivers(kube_client, namespace,
                                                                       everywhere_receiver, http):
    receiver = everywhere_receiver
    other = f"t-{uuid.uuid4().hex[:8]}"
    kube_client.create(kube.NAMESPACES, {"metadata": {"name": other}})
    try:
        out = post(http, receiver, am_payload(
            am_alert("DiskFull", service="legacy-db", namespace="no-such-namespace-" + uuid.uuid4().hex[:6]),
            am_alert("NodeDown", namespace=other, severity="warning"),
        ))
        assert out["created"] == 2
        [here] = incidents(kube_client, namespace)
        assert here["spec"]["managed"] is False and here["spec"]["service"] == "legacy-db"
        assert here["spec"]["severity"] == "critical"
        [there] = incidents(kube_client, other)
        assert there["spec"]["managed"] is False
        assert there["spec"]["service"] == "NodeDown"  # no service label: the alertname
        assert there["spec"]["severity"] == "medium"   # warning
        assert there["metadata"]["name"].startswith("nodedown-")
    finally:
        kube_client.delete(kube.NAMESPACES, other)


def test_generic_alert_api(kube_client, namespace, receiver, http):
    make_service(kube_client, namespace, "frontend-api")
    ts = iso_ms(datetime.now(UTC))
    body = {"service": "frontend-api", "severity": "high", "message": "HTTP 5xx error rate > 10%",
            "labels": {"env": "production", "namespace": namespace}, "timestamp": ts}
    out = post(http, receiver, body, "/api/v1/alerts")
    assert out["created"] == 1
    out = post(http, receiver, body, "/api/v1/alerts")
    assert out["deduplicated"] == 1  # same labels and timestamp: the same alert
    [inc] = incidents(kube_client, namespace)
    assert inc["spec"]["source"] == "api" and inc["spec"]["managed"] is True
    assert inc["spec"]["title"] == "HTTP 5xx error rate > 10%"
    assert inc["spec"]["labels"]["env"] == "production"
    # Without a namespace label it lands in the receiver's namespace, unmanaged unless a service matches.
    out = post(http, receiver, {"service": "batch", "severity": "low", "message": "job failed"}, "/api/v1/alerts")
    assert out["created"] == 1
    batch = [i for i in incidents(kube_client, namespace) if i["spec"]["service"] == "batch"]
    assert batch and batch[0]["spec"]["managed"] is False and batch[0]["spec"]["severity"] == "low"


def test_no_report_route(kube_client, namespace, receiver, http):
    # The receiver's token never reads incidents: post-mortems are rendered with the reader's
    # own credentials (`kubectl paramedic report`, tests/e2e/test_cli.py).
    make_service(kube_client, namespace, "reports")
    out = post(http, receiver, am_payload(am_alert(app="reports", namespace=namespace)))
    ns, name = out["incidents"][0].split("/")
    resp = http.get(f"{receiver.url}/api/v1/incidents/{ns}/{name}/report.md")
    assert resp.status_code == 404, resp.text
    assert "Post-mortem" not in resp.text


def test_readyz_and_unreachable_api(kube_client, namespace, receiver, http):
    assert httpx.get(receiver.url + "/readyz").status_code == 200
    closed = kube.KubeClient(kube.Connection(host=f"http://127.0.0.1:{free_port()}", verify=False,
                                             token=lambda: None), timeout=2)
    down = Receiver(create_app(receiver_settings(namespace), closed))
    try:
        assert httpx.get(down.url + "/readyz").status_code == 503
        resp = http.post(down.url + "/api/v1/alertmanager", json=am_payload(am_alert(namespace=namespace)))
        assert resp.status_code == 503 and resp.headers["Retry-After"]
    finally:
        down.stop()


def test_throughput_batches_of_100(kube_client, namespace, receiver, http):
    for s in range(5):
        make_service(kube_client, namespace, f"bulk{s}")
    starts = datetime.now(UTC)
    # Each batch spreads over five services, as one Alertmanager group by alertname would.
    batches = [am_payload(*[am_alert(f"Alert{b}", app=f"bulk{i % 5}", instance=f"{b}-{i}", namespace=namespace,
                                     starts=starts) for i in range(100)]) for b in range(10)]
    started = time.perf_counter()
    for body in batches:
        post(http, receiver, body)
    elapsed = time.perf_counter() - started
    rate = 1000 / elapsed
    print(f"\nwebhook throughput: 1000 alerts in {elapsed:.2f}s = {rate:.0f} alerts/s (batches of 100, one sender)")
    incs = incidents(kube_client, namespace)
    assert len(incs) == 5
    assert sum(len(i["status"]["alerts"]) for i in incs) == 1000
    # The target is 1,000/s on an idle machine (API server latency dominates: the shared test machine
    # is often several times slower); the bound catches a collapse such as one write per alert.
    assert rate > 50


def test_paramedic_webhook_serves_with_gunicorn(kubeconfig, kube_client, namespace, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    env = {**os.environ, "PARAMEDIC_KUBECONFIG": str(kubeconfig), "PARAMEDIC_NAMESPACE": namespace,
           "PARAMEDIC_WEBHOOK_TOKEN_FILE": str(token_file), "PARAMEDIC_WEBHOOK_THREADS": "4"}
    env.pop("PARAMEDIC_WEBHOOK_TOKEN", None)
    exe = str(Path(sys.executable).parent / "paramedic-webhook")
    # Without a token it refuses to start.
    refused = subprocess.run([exe, "--bind", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60,
                             env={**env, "PARAMEDIC_WEBHOOK_TOKEN_FILE": ""})
    assert refused.returncode == 2 and "bearer token" in refused.stderr
    proc = subprocess.Popen([exe, "--bind", f"127.0.0.1:{port}", "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "webhook.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, 60, "gunicorn serving /healthz")
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        alert = am_alert("GunicornCheck", service="served", namespace=namespace)
        assert httpx.post(url + "/api/v1/alertmanager", json=am_payload(alert)).status_code == 401
        resp = httpx.post(url + "/api/v1/alertmanager", json=am_payload(alert),
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["created"] == 1
        assert b"paramedic_alerts_received_total" in httpx.get(url + "/metrics").content
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_receiver_writes_status_after_create(kube_client, namespace, receiver, http):
    """The API server drops `status` on create (a subresource): the receiver writes createdAt
    with the incident's first alerts, and a second create of the name is a conflict."""
    from paramedic.ingest import build_incident

    before = datetime.now(UTC).replace(microsecond=0)
    out = post(http, receiver, am_payload(am_alert(app="checkout", namespace=namespace, starts=before)))
    after = datetime.now(UTC)
    assert out["created"] == 1
    [inc] = incidents(kube_client, namespace)
    name = inc["metadata"]["name"]
    stored = kube_client.get(kube.INCIDENTS, name, namespace)
    assert stored["spec"]["state"] == "open" and stored["status"]["createdAt"]
    assert before <= parse(stored["status"]["createdAt"]) <= after
    body = build_incident(namespace, name, service="checkout", severity="low", title="by hand",
                          description="", source="manual", managed=True, labels={}, runbook_url="", now=after)
    with pytest.raises(kube.Conflict):
        kube_client.create(kube.INCIDENTS, {k: v for k, v in body.items() if k != "status"}, namespace)
