"""The control plane itself fails under Paramedic: the API server stopped for 30 s while
alerts stream in, etcd stopped and restarted under the operator and the receiver.

These run on the suite's private cluster (see conftest.py): the shared one is never
stopped.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from paramedic import kube
from paramedic.domain import alert_records as records
from paramedic.domain.timeutil import iso_ms
from tests.e2e.test_alertmanager import ALERTMANAGER, Alertmanager, injected
from tests.helpers import wait_for, wait_object

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "chaos-" + uuid.uuid4().hex
OUTAGE_SECONDS = 30


class RetryingSender:
    """Posts generic alerts one by one, retrying connection errors and 5xx as Alertmanager
    does (never 4xx); counts what it saw. Bounded: stops at `stop()` or its deadline."""

    def __init__(self, url: str, namespace: str, service: str, every: float = 0.25, deadline: float = 240):
        self.url, self.namespace, self.service, self.every = url, namespace, service, every
        self.sent: list[str] = []          # instances answered 200
        self.statuses: list[int] = []
        self.connection_errors = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + deadline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._i = 0

    def start(self) -> RetryingSender:
        self._thread.start()
        return self

    def stop(self, drain: float = 120) -> None:
        """Stop producing new alerts; the one in flight is retried until it lands (or `drain` passes)."""
        self._stop.set()
        self._thread.join(drain)

    def _run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15) as http:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                instance = f"gen-{self._i}"
                self._i += 1
                body = {"service": self.service, "severity": "critical", "message": f"errors on {instance}",
                        "labels": {"namespace": self.namespace, "instance": instance, "app": self.service},
                        "timestamp": iso_ms(datetime.now(UTC))}
                delay = 0.2
                while time.monotonic() < self._deadline:
                    try:
                        resp = http.post(self.url + "/api/v1/alerts", json=body)
                    except httpx.TransportError:
                        self.connection_errors += 1
                    else:
                        self.statuses.append(resp.status_code)
                        if resp.status_code == 200:
                            self.sent.append(instance)
                            break
                        assert resp.status_code >= 500, f"a 4xx is never retried: {resp.status_code} {resp.text}"
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                time.sleep(self.every)


def recorded_instances(client: kube.KubeClient, ns: str) -> list[str]:
    out = []
    for inc in client.list(kube.INCIDENTS, ns):
        out += [records.entry_labels(inc, a).get("instance") for a in (inc.get("status") or {}).get("alerts") or []]
    return out


def make_service(client: kube.KubeClient, ns: str, name: str) -> None:
    client.create(kube.MONITORED_SERVICES, {"metadata": {"name": name}, "spec": {
        "target": {"name": name}, "alertSelector": {"matchLabels": {"app": name}}}}, ns)


@pytest.mark.skipif(not __import__("pathlib").Path(ALERTMANAGER).exists(), reason="prometheus-alertmanager missing")
def test_api_server_down_30s_during_an_alert_stream(private_cluster, private_namespace, webhooks, tmp_path):
    pc, ns = private_cluster, private_namespace
    make_service(pc.client, ns, "checkout")
    hook = webhooks(pc.kubeconfig, ns, TOKEN)
    am = Alertmanager(tmp_path / "am", hook.url + "/api/v1/alertmanager", TOKEN)
    sender = RetryingSender(hook.url, ns, "checkout").start()
    injected_am: list[str] = []
    starts = datetime.now(UTC) - timedelta(seconds=5)

    def inject(n: int) -> None:
        for _ in range(n):
            instance = f"am-{len(injected_am)}"
            am.post_alerts([injected("CheckoutErrors", ns, instance, starts)])
            injected_am.append(instance)

    try:
        inject(3)
        time.sleep(3)
        pc.cluster.stop_component("kube-apiserver")
        down_at = time.monotonic()
        saw_unready = False
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            inject(1)
            try:
                saw_unready |= httpx.get(hook.url + "/readyz", timeout=5).status_code == 503
            except httpx.HTTPError:
                pass
            time.sleep(2)
        pc.cluster.start_component("kube-apiserver")
        outage = time.monotonic() - down_at
        inject(2)
        time.sleep(3)
    finally:
        sender.stop()
    try:
        expected = set(injected_am) | set(sender.sent)

        def all_recorded():
            return expected <= set(recorded_instances(pc.client, ns))

        wait_for(all_recorded, 120, "every alert sent during the outage recorded")
        failed = am.webhook_counter("alertmanager_notifications_failed_total")
    finally:
        am.stop()
    recorded = recorded_instances(pc.client, ns)
    print(f"\nAPI server down {outage:.0f}s: {len(injected_am)} alerts via Alertmanager "
          f"({failed:.0f} failed notifications retried), {len(sender.sent)} via the retrying sender "
          f"({sender.statuses.count(503)} x 503, {sender.connection_errors} connection errors); "
          f"{len(recorded)} recorded, {len(recorded) - len(set(recorded))} duplicates")
    assert saw_unready, "/readyz never said 503 while the API server was down"
    assert 503 in sender.statuses, "the receiver never answered 503 during the outage"
    assert failed >= 1, "Alertmanager never saw a failed notification: the outage was not exercised"
    assert len(recorded) == len(set(recorded)), "an alert was recorded twice"
    assert len(sender.sent) >= 10


def test_etcd_restart_operator_and_receiver_recover(private_cluster, private_namespace, operators, webhooks):
    pc, ns = private_cluster, private_namespace
    make_service(pc.client, ns, "web")
    op = operators(pc.kubeconfig, ns)
    hook = webhooks(pc.kubeconfig, ns, TOKEN)
    inc = {"metadata": {"name": "before"}, "spec": {"service": "web", "severity": "low", "title": "before"}}
    pc.client.create(kube.INCIDENTS, inc, ns)
    wait_object(pc.client, kube.INCIDENTS, "before", ns, lambda i: i["status"]["timeline"], 60,
                "the operator handling an incident before the fault")

    pc.cluster.stop_component("etcd")
    time.sleep(10)  # the API server answers errors meanwhile; both processes must ride it out
    pc.cluster.start_component("etcd")
    wait_for(lambda: _healthy(pc.client), 90, "the API server healthy again")

    # The watches resumed: a new object and a change to an old one are both reconciled.
    pc.client.create(kube.INCIDENTS, {**inc, "metadata": {"name": "after"}, "spec": {**inc["spec"], "title": "after"}}, ns)
    pc.client.patch(kube.INCIDENTS, "before", {"spec": {"state": "acknowledged"}}, ns)
    wait_object(pc.client, kube.INCIDENTS, "after", ns, lambda i: i["status"]["timeline"], 90,
                "the operator handling an incident created after the etcd restart")
    wait_object(pc.client, kube.INCIDENTS, "before", ns, lambda i: i["status"]["acknowledgedAt"], 90,
                "the operator reconciling a change made after the etcd restart")
    # The receiver writes again (a retrying sender would have got 503 in between).
    body = {"service": "web", "severity": "low", "message": "after etcd", "labels": {"namespace": ns, "app": "web"}}
    resp = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        httpx.post(hook.url + "/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15)),
        60, "the receiver persisting alerts again")
    assert resp.json()["joined"] == 1
    assert op.proc.poll() is None and hook.proc.poll() is None, "a process died instead of riding out the fault"


def _healthy(client: kube.KubeClient) -> bool:
    try:
        client.list(kube.INCIDENTS, "default")
        return True
    except (kube.ApiError, kube.Unavailable):
        return False
