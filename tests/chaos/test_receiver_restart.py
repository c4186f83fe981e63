"""The receiver (gunicorn) restarted during an alert storm, gracefully and with SIGKILL:
senders that retry connection errors and 5xx, as Alertmanager does, lose nothing."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from devtools.wait import WaitTimeout, wait_for
from paramedic import kube
from paramedic.domain import alert_records as records
from paramedic.domain.alert import labels_fingerprint
from tests.e2e.test_webhook import am_alert, am_payload

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

TOKEN = "storm-" + uuid.uuid4().hex
SENDERS = 4
REQUESTS = 20
ALERTS_PER_REQUEST = 20


class Refused(Exception):
    """A 4xx: Alertmanager would not retry it."""


class Sender(threading.Thread):
    """Posts REQUESTS Alertmanager payloads; each is retried until answered 200 (bounded in time)."""

    def __init__(self, url: str, ns: str, app: str, starts: datetime):
        super().__init__(daemon=True)
        self.url, self.ns, self.app, self.starts = url, ns, app, starts
        self.fingerprints: set[str] = set()
        self.delivered = 0
        self.retries = 0
        self.codes: list[int] = []
        self.error: str = ""

    def run(self) -> None:
        deadline = time.monotonic() + 150
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            for r in range(REQUESTS):
                alerts = [am_alert(f"Storm{r}", app=self.app, instance=f"{self.app}-{r}-{i}", namespace=self.ns,
                                   starts=self.starts) for i in range(ALERTS_PER_REQUEST)]
                def answered(alerts: list = alerts) -> bool:
                    """One try, as Alertmanager makes them: 200 delivers, 5xx and no answer are retried."""
                    try:
                        resp = http.post(self.url + "/api/v1/alertmanager", json=am_payload(*alerts))
                        self.codes.append(resp.status_code)
                        if resp.status_code == 200:
                            return True
                        if resp.status_code < 500:  # never retried by Alertmanager
                            raise Refused(f"{resp.status_code} {resp.text}")
                    except httpx.TransportError:
                        self.codes.append(0)
                    self.retries += 1
                    return False

                try:
                    wait_for(answered, max(0.0, deadline - time.monotonic()), f"request {r} answered 200",
                             interval=0.3, ignore=())
                except WaitTimeout:
                    self.error = f"request {r} never answered 200"
                    return
                except Refused as exc:
                    self.error = str(exc)
                    return
                self.delivered += 1
                self.fingerprints |= {a["fingerprint"] for a in alerts}
                time.sleep(0.3)


def test_receiver_restarted_during_a_storm_loses_nothing(kube_client, namespace, webhooks, kubeconfig):
    apps = [f"storm{i}" for i in range(SENDERS)]
    for app in apps:
        kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": app}, "spec": {
            "target": {"name": app}, "alertSelector": {"matchLabels": {"app": app}}}}, namespace)
    hook = webhooks(kubeconfig, namespace, TOKEN)
    starts = datetime.now(UTC)
    senders = [Sender(hook.url, namespace, app, starts) for app in apps]
    started = time.monotonic()
    for s in senders:
        s.start()
    restarts = []
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        time.sleep(2.5)
        if not any(s.is_alive() for s in senders):
            break
        hook.kill(sig)  # the whole process group: master and workers
        restarts.append(sig.name)
        time.sleep(0.5)  # senders meet a closed port meanwhile
        hook.start()
    for s in senders:
        s.join(160)
    elapsed = time.monotonic() - started
    assert not [s.error for s in senders if s.error], [s.error for s in senders]
    sent = set().union(*(s.fingerprints for s in senders))
    assert len(sent) == SENDERS * REQUESTS * ALERTS_PER_REQUEST

    def recorded() -> list[str]:
        return [records.entry_fingerprint(a) for inc in kube_client.list(kube.INCIDENTS, namespace)
                for a in (inc.get("status") or {}).get("alerts") or []]

    got = recorded()
    missing = sent - set(got)
    retries = sum(s.retries for s in senders)
    conn_errors = sum(s.codes.count(0) for s in senders)
    print(f"\nstorm: {len(sent)} alerts in {SENDERS * REQUESTS} requests over {elapsed:.0f}s, receiver restarted "
          f"{restarts}; {retries} retries ({conn_errors} connection errors, "
          f"{sum(s.codes.count(503) for s in senders)} x 503); {len(got)} recorded, {len(missing)} missing")
    assert len(restarts) >= 2, "the storm ended before the receiver was restarted: nothing was tested"
    assert retries > 0, "no sender ever had to retry: the restarts missed the storm"
    assert not missing, f"{len(missing)} alerts lost"
    assert len(got) == len(set(got)), "an alert was recorded twice"
    entries = [(inc, a) for inc in kube_client.list(kube.INCIDENTS, namespace)
               for a in (inc.get("status") or {}).get("alerts") or []]
    assert all(records.entry_fingerprint(a) == labels_fingerprint(records.entry_labels(inc, a)) for inc, a in entries), \
        "an entry's labels do not add up to the alert that was sent"
