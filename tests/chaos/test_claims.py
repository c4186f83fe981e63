"""One remediation at a time per service: a claim whose incident is deleted mid-remediation
(by a person, or a namespace clean-up) must not block the service's later incidents."""

from __future__ import annotations

import pytest

from paramedic import kube
from tests.e2e.test_control_plane import deployment
from tests.helpers import wait_object

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]


def attempts_of(inc: dict) -> list[dict]:
    return ((inc.get("status") or {}).get("remediation") or {}).get("attempts") or []


def claim(client, ns, svc) -> str | None:
    return ((client.get(kube.MONITORED_SERVICES, svc, ns).get("status") or {}).get("remediation") or {}).get("inFlight")


def test_a_claim_left_by_a_deleted_incident_is_released(kube_client, namespace, operators, kubeconfig, http_service):
    kube_client.create(kube.DEPLOYMENTS, deployment("held", replicas=1), namespace)
    # A failing probe keeps the first attempt verifying (and holding the claim); a high
    # threshold keeps the prober from opening incidents of its own.
    http_service.set("failing")
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "held"}, "spec": {
        "target": {"kind": "Deployment", "name": "held"},
        "probe": {"url": http_service.url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 100},
        "remediation": {"actions": [{"restart": {}}], "maxAttempts": 1, "cooldownSeconds": 0, "verifySeconds": 600}}},
        namespace)
    operators(kubeconfig, namespace)
    first = {"metadata": {"name": "first"}, "spec": {"service": "held", "severity": "high", "title": "first"}}
    kube_client.create(kube.INCIDENTS, first, namespace)
    wait_object(kube_client, kube.INCIDENTS, "first", namespace,
                lambda i: any(a.get("result") == "Verifying" for a in attempts_of(i)), 60, "the first attempt verifying")
    assert claim(kube_client, namespace, "held") == "first"

    kube_client.delete(kube.INCIDENTS, "first", namespace)
    kube_client.create(kube.INCIDENTS, {**first, "metadata": {"name": "second"}, "spec": {**first["spec"], "title": "2"}},
                       namespace)
    [attempt] = attempts_of(wait_object(kube_client, kube.INCIDENTS, "second", namespace, attempts_of, 60,
                                        "the second incident remediated (not waiting forever on a deleted one)"))
    assert attempt["action"] == "restart"
    assert claim(kube_client, namespace, "held") == "second"
