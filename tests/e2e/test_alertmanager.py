"""The real Alertmanager (Debian's prometheus-alertmanager) notifying the live receiver.

Alerts are injected through Alertmanager's v2 API; Alertmanager groups them,
posts its webhook payload with a bearer token, re-sends on repeat_interval,
sends resolutions, and retries 5xx: the receiver must turn all of that into
each incident once, with nothing lost across an outage.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devtools.cluster import free_port
from paramedic import kube
from paramedic.domain import alert_records as records
from paramedic.domain.alert import labels_fingerprint
from paramedic.domain.timeutil import iso_ms
from paramedic.webhook.app import create_app
from tests.e2e.test_webhook import TOKEN, Receiver, make_service, receiver_settings
from tests.helpers import wait_for, wait_object, wait_serving

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(ALERTMANAGER).exists(), reason="prometheus-alertmanager not installed (hack/apt-deps.sh)"),
]


class Alertmanager:
    """One Alertmanager process on free loopback ports, clustering off, state in a temp dir."""

    def __init__(self, workdir: Path, webhook_url: str, token: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {
                "receiver": "paramedic",
                "group_by": ["alertname"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "5s",
            },
            "receivers": [{
                "name": "paramedic",
                "webhook_configs": [{
                    "url": webhook_url,
                    "send_resolved": True,
                    "max_alerts": 0,
                    "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                }],
            }],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.logfile = (workdir / "alertmanager.log").open("w")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={workdir / 'alertmanager.yml'}", f"--storage.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=debug"],
            stdout=self.logfile, stderr=subprocess.STDOUT)
        self.workdir = workdir
        wait_serving(self.proc, self.url + "/-/ready", "alertmanager",
                     lambda: (workdir / "alertmanager.log").read_text(), timeout=30)

    def post_alerts(self, alerts: list[dict]) -> None:
        resp = httpx.post(self.url + "/api/v2/alerts", json=alerts, timeout=10)
        assert resp.status_code == 200, resp.text

    def webhook_counter(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("integration") == "webhook":
                    total += sample.value
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


@pytest.fixture
def start_alertmanager(tmp_path):
    started: list[Alertmanager] = []

    def start(receiver: Receiver, token: str = TOKEN) -> Alertmanager:
        am = Alertmanager(tmp_path / f"am{len(started)}", receiver.url + "/api/v1/alertmanager", token)
        started.append(am)
        return am

    yield start
    for am in started:
        am.stop()


@pytest.fixture
def live_receiver(kube_client, namespace):
    r = Receiver(create_app(receiver_settings(namespace), kube_client))
    yield r
    r.stop()


def injected(name: str, namespace: str, instance: str, starts: datetime, ends: datetime | None = None,
             app: str = "checkout") -> dict:
    alert: dict[str, Any] = {
        "labels": {"alertname": name, "app": app, "severity": "critical", "namespace": namespace,
                   "instance": instance},
        "annotations": {"summary": f"{name} on {instance}", "description": "p99 over 2s"},
        "startsAt": iso_ms(starts),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    if ends is not None:
        alert["endsAt"] = iso_ms(ends)
    return alert


def incidents(client: kube.KubeClient, ns: str) -> list[dict]:
    return client.list(kube.INCIDENTS, ns)


def test_alertmanager_groups_resends_and_resolutions(kube_client, namespace, live_receiver, start_alertmanager):
    make_service(kube_client, namespace, "checkout")
    am = start_alertmanager(live_receiver)
    starts = datetime.now(UTC) - timedelta(seconds=30)
    alerts = [injected("HighLatency", namespace, f"10.0.0.{i}", starts) for i in range(3)]
    am.post_alerts(alerts)

    def one_incident_with_three_alerts():
        items = incidents(kube_client, namespace)
        return items if items and len((items[0].get("status") or {}).get("alerts") or []) == 3 else None

    [inc] = wait_for(one_incident_with_three_alerts, 30, "the incident with three alerts")
    assert inc["spec"]["service"] == "checkout" and inc["spec"]["severity"] == "critical"
    assert inc["spec"]["source"] == "alertmanager" and inc["spec"]["managed"] is True
    for entry in inc["status"]["alerts"]:
        # Alertmanager's own fingerprint is the Prometheus label-set hash the receiver computes too.
        assert records.entry_fingerprint(entry) == labels_fingerprint(records.entry_labels(inc, entry))
        assert entry["generatorURL"].startswith("http://prometheus.example:9090/")

    # repeat_interval (5s) re-sends the unchanged group: answered 200, recorded nothing new.
    wait_for(lambda: live_receiver.statuses().count(200) >= 2, 30, "a repeated notification")
    [same] = incidents(kube_client, namespace)
    assert len(same["status"]["alerts"]) == 3
    assert len(same["status"]["timeline"]) == len(inc["status"]["timeline"])

    # Resolution: the same alerts with endsAt in the past.
    ended = datetime.now(UTC) - timedelta(seconds=1)
    am.post_alerts([injected("HighLatency", namespace, f"10.0.0.{i}", starts, ends=ended) for i in range(3)])

    # The alerts' ends and the timeline entry, in the one object read. The receiver records facts
    # only: spec.state is the operator's to move (not running here), so it stays open.
    done = wait_object(kube_client, kube.INCIDENTS, inc["metadata"]["name"], namespace,
                       lambda i: all(a["status"] == "resolved" and a["endsAt"] for a in i["status"]["alerts"])
                       and i["status"]["timeline"][-1]["message"] == "all alerts resolved", 30,
                       "every alert recorded resolved by the resolved notification")
    assert all(a["status"] == "resolved" for a in done["status"]["alerts"])
    assert done["spec"]["state"] == "open"
    assert done["status"]["timeline"][-1]["message"] == "all alerts resolved"
    assert len(incidents(kube_client, namespace)) == 1
    assert set(live_receiver.statuses()) == {200}


def test_a_wrong_token_is_refused(kube_client, namespace, live_receiver, start_alertmanager):
    make_service(kube_client, namespace, "checkout")
    am = start_alertmanager(live_receiver, token="not-the-token")
    am.post_alerts([injected("HighLatency", namespace, "10.0.0.1", datetime.now(UTC))])
    wait_for(lambda: 401 in live_receiver.statuses(), 30, "the receiver answering 401")
    wait_for(lambda: am.webhook_counter("alertmanager_notifications_failed_total") >= 1, 30,
             "Alertmanager counting the failed notification")
    assert 200 not in live_receiver.statuses()
    assert incidents(kube_client, namespace) == []


def test_an_outage_loses_nothing(kube_client, namespace, start_alertmanager):
    make_service(kube_client, namespace, "checkout")
    # The API server "down": the receiver's client points at a closed port, so it answers 503.
    closed = kube.KubeClient(kube.Connection(host=f"http://127.0.0.1:{free_port()}", verify=False,
                                             token=lambda: None), timeout=2)
    receiver = Receiver(create_app(receiver_settings(namespace), closed))
    try:
        am = start_alertmanager(receiver)
        starts = datetime.now(UTC)
        am.post_alerts([injected("ErrorBurst", namespace, f"pod-{i}", starts) for i in range(2)])
        wait_for(lambda: receiver.statuses().count(503) >= 2, 60, "Alertmanager retrying after 503s")
        assert incidents(kube_client, namespace) == []
        # While it is down, one more alert joins the group.
        am.post_alerts([injected("ErrorBurst", namespace, "pod-2", starts)])

        receiver.app = create_app(receiver_settings(namespace), kube_client)  # the API server is back

        def all_three():
            items = incidents(kube_client, namespace)
            return items if items and len((items[0].get("status") or {}).get("alerts") or []) == 3 else None

        [inc] = wait_for(all_three, 60, "Alertmanager's retries to land")
        assert sorted(records.entry_labels(inc, a)["instance"] for a in inc["status"]["alerts"]) == \
            ["pod-0", "pod-1", "pod-2"]
        assert 200 in receiver.statuses()
        assert len(incidents(kube_client, namespace)) == 1
    finally:
        receiver.stop()



AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def amtool(am: Alertmanager, *args: str) -> str:
    """Debian's amtool, a real client of Alertmanager's API."""
    out = subprocess.run([AMTOOL, f"--alertmanager.url={am.url}", "--timeout=10s", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.skipif(not Path(AMTOOL).exists(), reason="amtool not installed (hack/apt-deps.sh)")
def test_amtool_alert_reaches_the_service_by_its_deployment_label(kube_client, namespace, live_receiver,
                                                                  start_alertmanager):
    # No alertSelector: the alert's namespace and deployment labels name the target.
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "target": {"kind": "Deployment", "name": "checkout"}}}, namespace)
    am = start_alertmanager(live_receiver)
    starts = (datetime.now(UTC) - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = ["alertname=KubeDeploymentReplicasMismatch", f"namespace={namespace}", "deployment=checkout",
              "severity=warning", "job=kube-state-metrics"]
    amtool(am, "alert", "add", *labels, f"--start={starts}",
           "--annotation=summary=Deployment checkout has not matched the expected number of replicas")

    def managed_incident():
        items = incidents(kube_client, namespace)
        return items if items and (items[0].get("status") or {}).get("alerts") else None

    [inc] = wait_for(managed_incident, 30, "the incident from amtool's alert")
    assert inc["spec"]["service"] == "checkout" and inc["spec"]["managed"] is True
    assert inc["spec"]["source"] == "alertmanager" and inc["spec"]["severity"] == "medium"  # warning
    assert inc["spec"]["labels"]["deployment"] == "checkout"
    assert "KubeDeploymentReplicasMismatch" in amtool(am, "alert", "query")

    # amtool ends the alert; Alertmanager sends the resolution; the receiver records it (every alert
    # resolved, with its end) and leaves spec.state to the operator (not running here).
    ended = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    amtool(am, "alert", "add", *labels, f"--start={starts}", f"--end={ended}",
           "--annotation=summary=Deployment checkout has not matched the expected number of replicas")

    done = wait_object(kube_client, kube.INCIDENTS, inc["metadata"]["name"], namespace,
                       lambda i: all(a["status"] == "resolved" and a["endsAt"] for a in i["status"]["alerts"])
                       and i["status"]["timeline"][-1]["message"] == "all alerts resolved", 30,
                       "the resolution recorded from Alertmanager's resolved notification")
    assert done["spec"]["state"] == "open"
    assert len(incidents(kube_client, namespace)) == 1
    assert set(live_receiver.statuses()) == {200}
