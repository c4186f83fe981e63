"""The operator against the real control plane: reconciliation and probe-driven incidents."""

from __future__ import annotations

import time

import pytest

from paramedic import kube
from tests.helpers import SwitchableService, wait_for

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


def status_of(client, res, name, ns) -> dict:
    return client.get(res, name, ns).get("status") or {}


def test_service_and_schedule_are_reconciled(kube_client, namespace, operator_factory):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "ghost"},
                                                 "spec": {"target": {"name": "ghost"}}}, namespace)
    operator_factory(namespace)
    st = wait_for(lambda: (lambda s: s if s.get("currentOnCall") else None)(
        status_of(kube_client, kube.ONCALL_SCHEDULES, "payments", namespace)), 60, "on-call status")
    assert st["currentOnCall"]["email"] in ("alice@example.com", "bob@example.com")
    assert st["nextHandoff"].endswith("Z")
    assert st["observedGeneration"] == 1

    def ready_condition():
        conds = status_of(kube_client, kube.MONITORED_SERVICES, "ghost", namespace).get("conditions") or []
        return next((c for c in conds if c["type"] == "Ready"), None)

    cond = wait_for(ready_condition, 30, "Ready condition")
    assert cond["status"] == "False" and cond["reason"] == "TargetNotFound"
    assert status_of(kube_client, kube.MONITORED_SERVICES, "ghost", namespace)["health"] == "Unknown"


def test_outage_opens_one_incident_and_recovery_resolves_it(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, probed_service("checkout", http_service.url), namespace)
    operator_factory(namespace)
    wait_for(lambda: status_of(kube_client, kube.MONITORED_SERVICES, "checkout", namespace).get("health") == "Healthy",
             30, "Healthy")

    started = time.monotonic()
    http_service.set("failing")
    inc = wait_for(lambda: next(iter(incidents(kube_client, namespace)), None), 30, "an incident")
    opened_after = time.monotonic() - started
    assert opened_after < 2 * 1 + 10  # interval x failureThreshold plus a few seconds
    assert inc["metadata"]["name"] == "checkout-down-1"
    assert inc["spec"]["source"] == "probe" and inc["spec"]["severity"] == "critical"
    assert "status 500" in inc["spec"]["description"]
    inc = wait_for(lambda: (lambda i: i if i["spec"].get("assignee") else None)(
        kube_client.get(kube.INCIDENTS, "checkout-down-1", namespace)), 30, "assignment")
    assert inc["spec"]["assignee"] in ("alice@example.com", "bob@example.com")
    svc_status = wait_for(lambda: (lambda s: s if s.get("openIncident") else None)(
        status_of(kube_client, kube.MONITORED_SERVICES, "checkout", namespace)), 10, "openIncident")
    assert svc_status["health"] == "Down" and svc_status["openIncident"] == "checkout-down-1"
    assert svc_status["lastProbe"]["statusCode"] == 500

    http_service.set("healthy")
    done = wait_for(lambda: (lambda i: i if i["spec"]["state"] == "resolved" else None)(
        kube_client.get(kube.INCIDENTS, "checkout-down-1", namespace)), 30, "auto-resolve")
    wait_for(lambda: done.get("status", {}).get("resolvedAt") or
             kube_client.get(kube.INCIDENTS, "checkout-down-1", namespace)["status"].get("resolvedAt"), 30, "resolvedAt")
    final = kube_client.get(kube.INCIDENTS, "checkout-down-1", namespace)
    assert final["status"]["mttrSeconds"] >= 0
    assert any("paramedic/prober" == e["actor"] and "resolved" in e["message"] for e in final["status"]["timeline"])
    wait_for(lambda: not status_of(kube_client, kube.MONITORED_SERVICES, "checkout", namespace).get("openIncident"),
             30, "openIncident cleared")
    assert len(incidents(kube_client, namespace)) == 1

    # A second outage is a new incident.
    http_service.set("unreachable")
    second = wait_for(lambda: kube_client.get_or_none(kube.INCIDENTS, "checkout-down-2", namespace), 30, "2nd incident")
    # The failure's class in the operator's words (nothing listens: refused), never the raw error.
    assert second["spec"]["description"].endswith("last: connection refused"), second["spec"]["description"]
    svc = status_of(kube_client, kube.MONITORED_SERVICES, "checkout", namespace)
    assert svc["lastProbe"]["reason"] == "ConnectionRefused" and "statusCode" not in svc["lastProbe"], svc


def test_slow_responses_degrade(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.MONITORED_SERVICES, probed_service("slowpoke", http_service.url, latencyThresholdMs=200,
                                                               timeoutSeconds=2, intervalSeconds=2), namespace)
    operator_factory(namespace)
    http_service.slow_seconds = 0.5
    http_service.set("slow")
    inc = wait_for(lambda: kube_client.get_or_none(kube.INCIDENTS, "slowpoke-down-1", namespace), 40, "incident")
    assert inc["spec"]["title"] == "slowpoke is slow"
    wait_for(lambda: status_of(kube_client, kube.MONITORED_SERVICES, "slowpoke", namespace)["health"] == "Degraded",
             10, "health Degraded")


def test_operator_restart_mid_outage_opens_no_duplicate(kube_client, namespace, operator_factory, http_service):
    kube_client.create(kube.MONITORED_SERVICES, probed_service("cart", http_service.url), namespace)
    op = operator_factory(namespace)
    http_service.set("failing")
    wait_for(lambda: kube_client.get_or_none(kube.INCIDENTS, "cart-down-1", namespace), 30, "incident")
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
        wait_for(lambda: any(c["reason"] == "Paused" for c in status_of(
            kube_client, kube.MONITORED_SERVICES, "edit", namespace).get("conditions", [])), 20, "Paused")
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
