"""Flow 2 + 3 together: an Alertmanager alert through the webhook opens an Incident that the
operator assigns, announces and repairs (rollout restart); the resolved alert resolves it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest

from devtools.mail import MailSink
from paramedic import kube
from paramedic.domain.maintenance import window_for
from paramedic.domain.timeutil import parse_or_none, utcnow
from tests.e2e.test_control_plane import deployment
from tests.e2e.test_operator_lifecycle import schedule
from tests.e2e.test_webhook import TOKEN, am_alert, am_payload, http, post, receiver, resolved  # noqa: F401 (fixtures below)  # noqa: F401
from tests.helpers import smtp_env, wait_for, wait_object

pytestmark = pytest.mark.e2e


def restart_stamp(dep: dict) -> str | None:
    return (dep["spec"]["template"]["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")


def test_alertmanager_alert_drives_an_auto_restart(kube_client, namespace, operator_factory, receiver, http):
    kube_client.create(kube.DEPLOYMENTS, deployment("checkout"), namespace)
    wait_object(kube_client, kube.DEPLOYMENTS, "checkout", namespace, lambda d: d["status"]["availableReplicas"] == 2,
                90, "checkout available")
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "team": "payments", "target": {"name": "checkout"}, "alertSelector": {"matchLabels": {"app": "checkout"}},
        "remediation": {"actions": [{"restart": {}}], "verifySeconds": 60}}}, namespace)
    mail = MailSink().start()
    try:
        operator_factory(namespace, env=smtp_env(mail.port))
        alert = am_alert("CheckoutDown", app="checkout", namespace=namespace, instance="checkout-0")
        post(http, receiver, am_payload(alert))
        post(http, receiver, am_payload(alert))  # Alertmanager's re-send: no second anything
        [inc] = kube_client.list(kube.INCIDENTS, namespace)
        name = inc["metadata"]["name"]
        assert inc["spec"]["source"] == "alertmanager" and inc["spec"]["managed"] is True

        restarted = restart_stamp(wait_object(kube_client, kube.DEPLOYMENTS, "checkout", namespace, restart_stamp, 60,
                                              "rollout restart"))
        inc = wait_object(kube_client, kube.INCIDENTS, name, namespace,
                          lambda i: i["spec"]["assignee"] and i["status"]["alerts"], 30, "the incident assigned")
        assert inc["spec"]["assignee"] == "alice@example.com"
        assert len(inc["status"]["alerts"]) == 1
        wait_for(lambda: any("opened" in s.lower() for s in mail.subjects()), 30, "opened e-mail")

        post(http, receiver, am_payload(resolved(alert)))
        expected_types = ("opened", "assigned", "alert-firing", "remediation-started", "alert-resolved", "state")
        inc = wait_object(kube_client, kube.INCIDENTS, name, namespace,
                          lambda i: any(a.get("result") == "Succeeded" for a in i["status"]["remediation"]["attempts"])
                          and i["spec"]["state"] == "resolved"
                          and set(expected_types) <= {e["type"] for e in i["status"]["timeline"]}, 60,
                          "remediation recorded as succeeded")
        assert inc["spec"]["state"] == "resolved"
        [attempt] = inc["status"]["remediation"]["attempts"]
        assert attempt["restartedAt"] == restarted
        types = [e["type"] for e in inc["status"]["timeline"]]
        for expected in expected_types:
            assert expected in types, (expected, types)
        wait_for(lambda: any("remediation" in s.lower() for s in mail.subjects()), 30, "remediation e-mail")
        assert len(kube_client.list(kube.INCIDENTS, namespace)) == 1
        time.sleep(2)  # a duplicate would follow within the operator's next reconciliations
        per_event = Counter(s for s in mail.subjects())
        assert all(n == 1 for n in per_event.values()), per_event
    finally:
        mail.stop()


def test_resolution_reaches_an_alert_joined_to_a_probe_incident(kube_client, namespace, receiver, http):
    """The probe opened and resolved the incident; the alert that joined it still gets its resolution."""
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "cart"}, "spec": {
        "target": {"name": "cart"}, "severity": "critical",
        "alertSelector": {"matchLabels": {"app": "cart"}}}}, namespace)
    kube_client.create(kube.INCIDENTS, {"metadata": {"name": "cart-down-1"}, "spec": {
        "service": "cart", "severity": "critical", "title": "cart is down", "source": "probe"}}, namespace)
    alert = am_alert("CartDown", app="cart", namespace=namespace)
    post(http, receiver, am_payload(alert))
    assert [i["metadata"]["name"] for i in kube_client.list(kube.INCIDENTS, namespace)] == ["cart-down-1"]
    kube_client.patch(kube.INCIDENTS, "cart-down-1", {"spec": {"state": "resolved"}}, namespace)
    post(http, receiver, am_payload(resolved(alert)))
    [entry] = kube_client.get(kube.INCIDENTS, "cart-down-1", namespace)["status"]["alerts"]
    assert entry["status"] == "resolved"


def test_an_alert_in_a_maintenance_window_is_recorded_marked_and_pages_no_one_and_remediation_waits_for_its_end(
        kube_client, namespace, operator_factory, receiver, http):
    kube_client.create(kube.DEPLOYMENTS, deployment("checkout"), namespace)
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    window = window_for(utcnow(), timedelta(seconds=25), "card vault migration", "tests")
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "team": "payments", "target": {"name": "checkout"}, "alertSelector": {"matchLabels": {"app": "checkout"}},
        "maintenance": {"windows": [window]},
        "remediation": {"actions": [{"restart": {}}], "verifySeconds": 30}}}, namespace)
    mail = MailSink().start()
    try:
        operator_factory(namespace, env=smtp_env(mail.port))
        wait_object(kube_client, kube.MONITORED_SERVICES, "checkout", namespace,
                    lambda s: s["status"]["maintenance"]["active"], 30, "the window active")
        post(http, receiver, am_payload(am_alert("CheckoutDown", app="checkout", namespace=namespace)))
        [inc] = kube_client.list(kube.INCIDENTS, namespace)
        name = inc["metadata"]["name"]

        def restarted() -> str | None:
            return restart_stamp(kube_client.get(kube.DEPLOYMENTS, "checkout", namespace))

        waiting = wait_object(kube_client, kube.INCIDENTS, name, namespace,
                              lambda i: i["status"]["remediation"]["phase"] == "Waiting" and i["status"]["maintenance"]
                              and {"in-maintenance", "assigned"} <= {e["type"] for e in i["status"]["timeline"]},
                              30, "remediation waiting")["status"]
        assert "maintenance window" in waiting["remediation"]["message"]
        assert waiting["maintenance"]["reason"] == "card vault migration"
        types = [e["type"] for e in waiting["timeline"]]
        assert "in-maintenance" in types and "assigned" in types
        assert restarted() is None
        # The same pass that assigned it queued no mail: nothing pending, nothing received.
        assert not waiting.get("notifications"), waiting["notifications"]
        assert mail.subjects() == []

        # The window ends: the restart runs.
        at = parse_or_none(restart_stamp(wait_object(kube_client, kube.DEPLOYMENTS, "checkout", namespace,
                                                     restart_stamp, 60, "the restart once the window is over")))
        assert at is not None and at >= parse_or_none(window["end"])
        assert not any("opened" in s.lower() for s in mail.subjects()), "the opening was paged after all"
    finally:
        mail.stop()
