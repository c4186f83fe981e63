"""The operator against the real control plane: reconciliation and probe-driven incidents."""

from __future__ import annotations

import time

import pytest

from paramedic import kube
from tests.helpers import SwitchableService, wait_for, wait_object

pytestmark = pytest.mark.e2e


def schedule(team: str = "payments") -> dict:
    return {"metadata": {"name": team}, "spec": {
        "participants": [{"name": "Alice", "email": "alice@example.com"},
                         {"name": "Bob", "email": "bob@example.com"}],
        "rotation": {"start": "2026-01-05T09:00:00Z", "lengthHours": 168}}}


def probed_service(name: str, url: str, **probe) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "team": "payments", "severity": "critical", "target": {"kind": "Deployment", "name": name},
        "probe": {"url": url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2,
                  "successThreshold": 2, **probe}}}


def incidents(client, ns) -> list[dict]:
    return client.list(kube.INCIDENTS, ns)


def service_when(client, ns, name, predicate, timeout, what) -> dict:
    """The MonitoredService's status once `predicate` holds over all of it."""
    return wait_object(client, kube.MONITORED_SERVICES, name, ns, lambda s: predicate(s["status"]), timeout,
                       what)["status"]


def incident_when(client, ns, name, predicate, timeout, what) -> dict:
    return wait_object(client, kube.INCIDENTS, name, ns, predicate, timeout, what)


def test_service_and_schedule_are_reconciled(kube_client, namespace, operator_factory):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "ghost"},
                                                 "spec": {"target": {"name": "ghost"}}}, namespace)
    operator_factory(namespace)
    st = wait_object(kube_client, kube.ONCALL_SCHEDULES, "payments", namespace,
                     lambda o: o["status"]["currentOnCall"] and o["status"]["nextHandoff"]
                     and "observedGeneration" in o["status"], 60, "on-call status")["status"]
    assert st["currentOnCall"]["email"] in ("alice@example.com", "bob@example.com")
    assert st["nextHandoff"].endswith("Z")
    assert st["observedGeneration"] == 1

    def ready_condition(status: dict) -> dict | None:
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)

    status = service_when(kube_client, namespace, "ghost", lambda s: ready_condition(s) and s["health"], 30,
                          "Ready condition")
    cond = ready_condition(status)
    assert cond["status"] == "False" and cond["reason"] == "TargetNotFound"
    assert status["health"] == "Unknown"


def test_outage_opens_one_incident_and_recovery_resolves_it(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, probed_service("checkout", http_service.url), namespace)
    operator_factory(namespace)
    service_when(kube_client, namespace, "checkout", lambda s: s["health"] == "Healthy", 30, "Healthy")

    started = time.monotonic()
    http_service.set("failing")
    inc = wait_for(lambda: next(iter(incidents(kube_client, namespace)), None), 30, "an incident")
    opened_after = time.monotonic() - started
    assert opened_after < 2 * 1 + 10  # interval x failureThreshold plus a few seconds
    assert inc["metadata"]["name"] == "checkout-down-1"
    assert inc["spec"]["source"] == "probe" and inc["spec"]["severity"] == "critical"
    assert "status 500" in inc["spec"]["description"]
    inc = incident_when(kube_client, namespace, "checkout-down-1", lambda i: i["spec"]["assignee"], 30, "assignment")
    assert inc["spec"]["assignee"] in ("alice@example.com", "bob@example.com")
    svc_status = service_when(kube_client, namespace, "checkout",
                              lambda s: s["openIncident"] and s["health"] and "statusCode" in s["lastProbe"], 10,
                              "openIncident")
    assert svc_status["health"] == "Down" and svc_status["openIncident"] == "checkout-down-1"
    assert svc_status["lastProbe"]["statusCode"] == 500

    http_service.set("healthy")
    # The prober resolves (spec), then the operator records it (status): wait for the second write.
    final = incident_when(kube_client, namespace, "checkout-down-1",
                          lambda i: i["spec"]["state"] == "resolved" and i["status"]["resolvedAt"]
                          and i["status"]["mttrSeconds"] is not None
                          and any("resolved" in e["message"] for e in i["status"]["timeline"]), 60,
                          "auto-resolve recorded")
    assert final["status"]["mttrSeconds"] >= 0
    assert any("paramedic/prober" == e["actor"] and "resolved" in e["message"] for e in final["status"]["timeline"])
    service_when(kube_client, namespace, "checkout", lambda s: not s.get("openIncident"), 30, "openIncident cleared")
    assert len(incidents(kube_client, namespace)) == 1

    # A second outage is a new incident.
    http_service.set("unreachable")
    second = incident_when(kube_client, namespace, "checkout-down-2", lambda i: i["spec"]["description"], 30,
                           "2nd incident")
    # The failure's class in the operator's words (nothing listens: refused), never the raw error.
    assert second["spec"]["description"].endswith("last: connection refused"), second["spec"]["description"]
    svc = service_when(kube_client, namespace, "checkout", lambda s: s["lastProbe"]["reason"], 30,
                       "the failed probe recorded")
    assert svc["lastProbe"]["reason"] == "ConnectionRefused" and "statusCode" not in svc["lastProbe"], svc


def test_slow_responses_degrade(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.MONITORED_SERVICES, probed_service("slowpoke", http_service.url, latencyThresholdMs=200,
                                                               timeoutSeconds=2, intervalSeconds=2), namespace)
    operator_factory(namespace)
    http_service.slow_seconds = 0.5
    http_service.set("slow")
    inc = incident_when(kube_client, namespace, "slowpoke-down-1", lambda i: i["spec"]["title"], 40, "incident")
    assert inc["spec"]["title"] == "slowpoke is slow"
    service_when(kube_client, namespace, "slowpoke", lambda s: s["health"] == "Degraded", 10, "health Degraded")


def test_operator_restart_mid_outage_opens_no_duplicate(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.MONITORED_SERVICES, probed_service("cart", http_service.url), namespace)
    op = operator_factory(namespace)
    http_service.set("failing")
    incident_when(kube_client, namespace, "cart-down-1", bool, 30, "incident")
    op.kill()
    operator_factory(namespace)
    hits = http_service.hits
    wait_for(lambda: http_service.hits >= hits + 5, 30, "probing resumed")
    assert [i["metadata"]["name"] for i in incidents(kube_client, namespace)] == ["cart-down-1"]


def test_edits_pause_and_delete_take_effect(kube_client, namespace, operator_factory, http_service):
    other = SwitchableService()
    try:
        kube_client.create(kube.MONITORED_SERVICES, probed_service("edit", http_service.url), namespace)
        operator_factory(namespace)
        wait_for(lambda: http_service.hits >= 2, 20, "first probes")
        kube_client.patch(kube.MONITORED_SERVICES, "edit", {"spec": {"probe": {"url": other.url}}}, namespace)
        wait_for(lambda: other.hits >= 2, 20, "probes of the edited URL")
        kube_client.patch(kube.MONITORED_SERVICES, "edit",
                          {"metadata": {"annotations": {"paramedic.dev/paused": "true"}}}, namespace)
        service_when(kube_client, namespace, "edit", lambda s: any(c["reason"] == "Paused" for c in s["conditions"]),
                     20, "Paused")
        time.sleep(1.5)
        paused_hits = other.hits
        time.sleep(3)
        assert other.hits == paused_hits
        kube_client.patch(kube.MONITORED_SERVICES, "edit",
                          {"metadata": {"annotations": {"paramedic.dev/paused": None}}}, namespace)
        wait_for(lambda: other.hits > paused_hits, 20, "probes resume after unpausing")
        kube_client.delete(kube.MONITORED_SERVICES, "edit", namespace)
        time.sleep(1.5)
        deleted_hits = other.hits
        time.sleep(3)
        assert other.hits == deleted_hits
    finally:
        other.stop()
