"""Alerts from the monitoring stacks users already run, against the real control plane:
Grafana alerting's webhook payload, and kube-state-metrics-shaped alerts routed by the
target's own labels (deployment, pod → ReplicaSet → Deployment) with no alertSelector."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from paramedic import kube
from paramedic.domain.alert import labels_fingerprint
from paramedic.domain.timeutil import iso_ms
from paramedic.webhook.app import create_app
from tests.e2e.test_control_plane import deployment, running_pods
from tests.e2e.test_webhook import (  # noqa: F401 (fixtures)
    TOKEN,
    Receiver,
    am_payload,
    everywhere_receiver,
    http,
    post,
    receiver,
    receiver_settings,
)
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def grafana_alert(status: str = "firing", starts: datetime | None = None, **labels: str) -> dict:
    labels = {"alertname": "CheckoutMemoryHigh", "grafana_folder": "shop", **labels}
    starts = starts or datetime.now(UTC)
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "checkout memory above 90%"},
        # Grafana writes local times with an offset.
        "startsAt": starts.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "endsAt": iso_ms(datetime.now(UTC)) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "https://grafana.example.com/alerting/grafana/mem1/view?orgId=1",
        "fingerprint": labels_fingerprint(labels),
        "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DX",
        "dashboardURL": "https://grafana.example.com/d/checkout?orgId=1",
        "panelURL": "https://grafana.example.com/d/checkout?orgId=1&viewPanel=4",
        "values": {"B": 93.61, "C": 1} if status == "firing" else {"B": 41.2, "C": 0},
        "valueString": "[ var='B' labels={} value=93.61 ]",
    }


def grafana_payload(*alerts: dict, status: str = "firing") -> dict:
    return {"receiver": "paramedic", "status": status, "orgId": 1, "alerts": list(alerts),
            "groupLabels": {"grafana_folder": "shop"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "https://grafana.example.com/", "version": "1", "groupKey": "{}/{}:{}",
            "truncatedAlerts": 0, "title": f"[{status.upper()}:1] CheckoutMemoryHigh",
            "state": "alerting" if status == "firing" else "ok", "message": "**Firing**\n\nValue: B=93.61"}


def ksm_alert(name: str, status: str = "firing", starts: datetime | None = None, **labels: str) -> dict:
    """As kube-prometheus-stack's kube-state-metrics rules send it: no service label, no selector to match."""
    labels = {"alertname": name, **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {labels.get('deployment') or labels.get('pod')}"},
        "startsAt": iso_ms(starts or datetime.now(UTC)),
        "endsAt": iso_ms(datetime.now(UTC)) if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": labels_fingerprint(labels),
    }


def target_service(name: str, target: str | None = None, **spec: Any) -> dict:
    """A MonitoredService with no alertSelector at all: only its target routes alerts to it."""
    return {"metadata": {"name": name}, "spec": {"target": {"kind": "Deployment", "name": target or name}, **spec}}


def incidents(client: kube.KubeClient, ns: str) -> list[dict]:
    return sorted(client.list(kube.INCIDENTS, ns), key=lambda o: o["metadata"]["name"])


# --- Grafana alerting ------------------------------------------------------------------


def test_grafana_payload_creates_and_resolves_an_incident(kube_client, namespace, receiver, http):
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "target": {"name": "checkout"}, "severity": "high",
        "alertSelector": {"matchLabels": {"grafana_folder": "shop"}}}}, namespace)
    starts = datetime.now(UTC) - timedelta(seconds=20)
    firing = grafana_alert(starts=starts, namespace=namespace)

    out = post(http, receiver, grafana_payload(firing))
    assert out["created"] == 1 and out["joined"] == 1
    [inc] = incidents(kube_client, namespace)
    assert inc["spec"]["source"] == "grafana" and inc["spec"]["service"] == "checkout"
    assert inc["spec"]["managed"] is True and inc["spec"]["severity"] == "high"  # the service's default
    [entry] = inc["status"]["alerts"]
    assert entry["startsAt"] == iso_ms(starts)  # the +02:00 offset honoured
    assert entry["silenceURL"].startswith("https://grafana.example.com/alerting/silence/new")
    assert entry["dashboardURL"] == "https://grafana.example.com/d/checkout?orgId=1"
    assert entry["panelURL"].endswith("viewPanel=4")
    assert inc["status"]["timeline"][-1]["message"].endswith("checkout memory above 90% (B=93.61, C=1)")

    # Grafana re-sends while firing: nothing new. Then the resolution is recorded: every alert resolved,
    # the incident left for the operator to resolve (the receiver never writes spec.state).
    assert post(http, receiver, grafana_payload(firing))["deduplicated"] == 1
    out = post(http, receiver, grafana_payload(grafana_alert("resolved", starts=starts, namespace=namespace),
                                               status="resolved"))
    assert out["resolved"] == 1 and out["autoResolvable"] == 1
    [inc] = incidents(kube_client, namespace)
    assert [(a["status"], bool(a["endsAt"])) for a in inc["status"]["alerts"]] == [("resolved", True)]
    assert inc["spec"]["state"] == "open"
    messages = [e["message"] for e in inc["status"]["timeline"]]
    assert any(m.endswith("(B=41.2, C=0)") for m in messages) and "all alerts resolved" in messages


def test_unknown_payload_versions_are_still_refused_naming_the_field(kube_client, namespace, receiver, http):
    body = grafana_payload(grafana_alert(namespace=namespace))
    body.pop("orgId")
    body["version"] = "2"
    resp = http.post(receiver.url + "/api/v1/alertmanager", json=body)
    assert resp.status_code == 400 and resp.json()["field"] == "version"
    assert incidents(kube_client, namespace) == []


# --- routing by the target's own labels --------------------------------------------------


def test_deployment_label_reaches_the_right_service_and_its_remediation(kube_client, namespace, operator_factory,
                                                                         receiver, http):
    kube_client.create(kube.DEPLOYMENTS, deployment("checkout"), namespace)
    kube_client.create(kube.DEPLOYMENTS, deployment("cart"), namespace)
    wait_object(kube_client, kube.DEPLOYMENTS, "checkout", namespace, lambda d: d["status"]["availableReplicas"] == 2,
                90, "checkout available")
    for name in ("cart", "checkout"):
        kube_client.create(kube.MONITORED_SERVICES, target_service(
            name, severity="medium", remediation={"actions": [{"restart": {}}], "verifySeconds": 60}), namespace)
    operator_factory(namespace)

    # Only namespace and deployment name the target, as KubeDeploymentReplicasMismatch does.
    alert = ksm_alert("KubeDeploymentReplicasMismatch", namespace=namespace, deployment="checkout")
    out = post(http, receiver, am_payload(alert))
    assert out["created"] == 1
    [inc] = incidents(kube_client, namespace)
    assert inc["spec"]["service"] == "checkout" and inc["spec"]["managed"] is True
    assert inc["spec"]["severity"] == "medium"

    stamp = wait_object(kube_client, kube.DEPLOYMENTS, "checkout", namespace,
                        lambda d: d["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT], 60,
                        "rollout restart of checkout")["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    # The attempt and the restart stamp it records may be two writes: wait for the stamp too.
    attempts = wait_object(kube_client, kube.INCIDENTS, inc["metadata"]["name"], namespace,
                           lambda i: i["status"]["remediation"]["attempts"][0].get("restartedAt"), 30,
                           "the attempt recorded")["status"]["remediation"]["attempts"]
    assert attempts[0]["action"] == "restart" and attempts[0]["restartedAt"] == stamp
    cart = kube_client.get(kube.DEPLOYMENTS, "cart", namespace)
    assert RESTARTED_AT not in (cart["spec"]["template"]["metadata"].get("annotations") or {})


def test_a_target_label_never_reaches_across_namespaces(kube_client, namespace, everywhere_receiver, http):
    receiver = everywhere_receiver  # even a token for every namespace
    kube_client.create(kube.MONITORED_SERVICES, target_service("checkout"), namespace)
    other = f"t-{uuid.uuid4().hex[:8]}"
    kube_client.create(kube.NAMESPACES, {"metadata": {"name": other}})
    try:
        post(http, receiver, am_payload(ksm_alert("KubeDeploymentReplicasMismatch", namespace=other,
                                                  deployment="checkout", severity="warning")))
        assert incidents(kube_client, namespace) == []
        [inc] = incidents(kube_client, other)
        assert inc["spec"]["managed"] is False  # no MonitoredService in its own namespace: unmanaged there
    finally:
        kube_client.delete(kube.NAMESPACES, other)


def test_pod_label_reaches_the_service_that_owns_the_pod(kube_client, namespace, receiver, http):
    # Pods on kwok's fake node: the ReplicaSet controller gives them real owner references.
    for name in ("web", "web-api"):
        kube_client.create(kube.DEPLOYMENTS, deployment(name), namespace)
    web_pods = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(running_pods(kube_client, namespace, "web")),
                        90, "2 web pods")
    api_pods = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(running_pods(kube_client, namespace, "web-api")),
                        90, "2 web-api pods")
    for name in ("web", "web-api"):
        kube_client.create(kube.MONITORED_SERVICES, target_service(name), namespace)
    web_pod, api_pod = web_pods[0]["metadata"]["name"], api_pods[0]["metadata"]["name"]
    starts = datetime.now(UTC)
    crash = ksm_alert("KubePodCrashLooping", starts=starts, namespace=namespace, pod=web_pod, container="app",
                      severity="warning")
    # web-api's pods also start with "web-": only their owner decides.
    waiting = ksm_alert("KubeContainerWaiting", starts=starts, namespace=namespace, pod=api_pod, container="app",
                        severity="warning")
    post(http, receiver, am_payload(crash, waiting))
    by_service = {i["spec"]["service"]: i for i in incidents(kube_client, namespace)}
    assert set(by_service) == {"web", "web-api"}
    assert all(i["spec"]["managed"] for i in by_service.values())
    assert [e["alertname"] for e in by_service["web"]["status"]["alerts"]] == ["KubePodCrashLooping"]
    assert [e["alertname"] for e in by_service["web-api"]["status"]["alerts"]] == ["KubeContainerWaiting"]

    # The crash-looping pod is replaced (as a restart replaces it); its alert resolves after it is gone.
    # A fresh receiver (nothing cached) still finds the incident: the pod's name is its controller's.
    kube_client.delete(kube.PODS, web_pod, namespace)
    wait_for(lambda: kube_client.get_or_none(kube.PODS, web_pod, namespace) is None, 60, "the old pod gone")
    fresh = Receiver(create_app(receiver_settings(namespace), kube_client))
    try:
        resp = http.post(fresh.url + "/api/v1/alertmanager",
                         json=am_payload({**crash, "status": "resolved", "endsAt": iso_ms(datetime.now(UTC))}))
        assert resp.status_code == 200, resp.text
        assert resp.json()["resolved"] == 1 and resp.json()["autoResolvable"] == 1
    finally:
        fresh.stop()
    # Recorded on web's incident (left for the operator to resolve); web-api's alert still fires.
    web = kube_client.get(kube.INCIDENTS, by_service["web"]["metadata"]["name"], namespace)
    assert [a["status"] for a in web["status"]["alerts"]] == ["resolved"] and web["spec"]["state"] == "open"
    web_api = kube_client.get(kube.INCIDENTS, by_service["web-api"]["metadata"]["name"], namespace)
    assert [a["status"] for a in web_api["status"]["alerts"]] == ["firing"]
    assert len(incidents(kube_client, namespace)) == 2
