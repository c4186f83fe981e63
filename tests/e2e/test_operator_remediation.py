"""Self-healing end to end: incidents restart Deployments and run playbooks under the policy."""

from __future__ import annotations

import pytest

from paramedic import kube
from tests.e2e.test_control_plane import deployment
from tests.helpers import verified, wait_object

pytestmark = pytest.mark.e2e

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def service(name: str, url: str, actions: list, **policy) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": name},
        "probe": {"url": url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2, "successThreshold": 2},
        "remediation": {"actions": actions, "cooldownSeconds": 1, "verifySeconds": 20, **policy}}}


def restart_stamp(dep: dict) -> str | None:
    return (dep["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)


def restarted_at(client, ns, name) -> str | None:
    return restart_stamp(client.get(kube.DEPLOYMENTS, name, ns))


def wait_restart(client, ns, name, timeout) -> str:
    """The Deployment's restart stamp, once there is one."""
    return restart_stamp(wait_object(client, kube.DEPLOYMENTS, name, ns, restart_stamp, timeout, f"{name} restarted"))


def attempts_of(inc: dict) -> list[dict]:
    return ((inc.get("status") or {}).get("remediation") or {}).get("attempts") or []


def incident_when(client, ns, name, predicate, timeout, what) -> dict:
    return wait_object(client, kube.INCIDENTS, name, ns, predicate, timeout, what)


def replicasets(client, ns, app) -> list[dict]:
    return client.list(kube.REPLICASETS, ns, labels={"app": app})


def start_available(client, ns, name):
    client.create(kube.DEPLOYMENTS, deployment(name), ns)
    wait_object(client, kube.DEPLOYMENTS, name, ns, lambda d: d["status"]["availableReplicas"] == 2, 90,
                f"{name} available")


def test_incident_restarts_deployment_then_resolves(kube_client, namespace, operator_factory, http_service):
    start_available(kube_client, namespace, "checkout")
    kube_client.create(kube.MONITORED_SERVICES, service("checkout", http_service.url, [{"restart": {}}]), namespace)
    operator_factory(namespace)
    wait_object(kube_client, kube.MONITORED_SERVICES, "checkout", namespace,
                lambda s: s["status"]["health"] == "Healthy", 30, "Healthy")
    http_service.set("failing")
    stamp = wait_restart(kube_client, namespace, "checkout", 40)
    http_service.set("healthy")  # the restart "fixed" it
    # The attempt's success, the state change and their timeline entries: several writes.
    inc = incident_when(kube_client, namespace, "checkout-down-1",
                        lambda i: any(a["result"] == "Succeeded" for a in attempts_of(i))
                        and i["spec"]["state"] == "resolved" and i["status"]["mitigatedAt"]
                        and {"remediation-started", "remediation-succeeded"} <= {e["type"] for e in i["status"]["timeline"]},
                        90, "attempt succeeded and the incident resolved")
    [attempt] = attempts_of(inc)
    assert attempt["action"] == "restart" and attempt["restartedAt"] == stamp
    timeline = [e["type"] for e in inc["status"]["timeline"]]
    assert "remediation-started" in timeline and "remediation-succeeded" in timeline
    assert inc["status"].get("mitigatedAt")
    dep = kube_client.get(kube.DEPLOYMENTS, "checkout", namespace)
    assert dep["status"].get("updatedReplicas") == 2
    # The service is released right after the attempt's end is written, asynchronously.
    svc = wait_object(kube_client, kube.MONITORED_SERVICES, "checkout", namespace,
                      lambda s: not s["status"]["remediation"].get("inFlight") and s["status"]["remediation"]["recent"],
                      15, "the service released")
    assert len(svc["status"]["remediation"]["recent"]) == 1


def test_dry_run_changes_nothing(kube_client, namespace, operator_factory, http_service):
    start_available(kube_client, namespace, "dry")
    kube_client.create(kube.MONITORED_SERVICES, service("dry", http_service.url, [{"restart": {}}], dryRun=True),
                       namespace)
    operator_factory(namespace)
    http_service.set("failing")
    [attempt] = attempts_of(incident_when(kube_client, namespace, "dry-down-1", verified, 40, "dry-run attempt"))
    assert attempt["result"] == "DryRun" and "would rollout restart Deployment/dry" in attempt["message"]
    assert restarted_at(kube_client, namespace, "dry") is None


def test_failing_playbook_moves_to_next_action_and_cap_hands_over(kube_client, namespace, operator_factory,
                                                                    http_service, kubeconfig):
    start_available(kube_client, namespace, "cap")
    actions = [{"ansible": {"playbook": "files/does-not-exist.yml"}},
               {"ansible": {"playbook": "restart-deployment.yml", "timeoutSeconds": 120}},
               {"restart": {}}]
    kube_client.create(kube.MONITORED_SERVICES, service("cap", http_service.url, actions, maxPerHour=2,
                                                        verifySeconds=3), namespace)
    operator_factory(namespace, env={"KUBECONFIG": str(kubeconfig)})
    http_service.set("failing")  # never recovers: every attempt fails verification
    first = attempts_of(incident_when(kube_client, namespace, "cap-down-1",
                                      lambda i: len(attempts_of(i)) >= 2 and "message" in attempts_of(i)[0], 90,
                                      "two attempts"))
    assert first[0]["result"] == "Failed" and "not in the playbook catalog" in first[0]["message"]
    # The real playbook restarted the Deployment through kubernetes.core.
    wait_restart(kube_client, namespace, "cap", 120)
    done = attempts_of(incident_when(kube_client, namespace, "cap-down-1",
                                     lambda i: attempts_of(i)[1].get("result") in ("Failed", "TimedOut"), 150,
                                     "second attempt finished"))
    assert done[1].get("rc") == 0 and done[1].get("status") == "successful"
    inc = incident_when(kube_client, namespace, "cap-down-1",
                        lambda i: i["status"]["remediation"]["phase"] == "Capped"
                        and any(e["type"] == "remediation-capped" for e in i["status"]["timeline"]), 60, "hourly cap")
    assert len(inc["status"]["remediation"]["attempts"]) == 2
    assert any(e["type"] == "remediation-capped" for e in inc["status"]["timeline"])


def test_operator_killed_mid_remediation_restarts_exactly_once(kube_client, namespace, operator_factory,
                                                                http_service):
    start_available(kube_client, namespace, "crash")
    kube_client.create(kube.MONITORED_SERVICES, service("crash", http_service.url, [{"restart": {}}],
                                                        verifySeconds=60), namespace)
    op = operator_factory(namespace)
    http_service.set("failing")
    incident_when(kube_client, namespace, "crash-down-1", attempts_of, 40, "attempt recorded")
    op.kill()  # SIGKILL right after the decision was recorded
    operator_factory(namespace)
    stamp = wait_restart(kube_client, namespace, "crash", 40)
    http_service.set("healthy")
    inc = incident_when(kube_client, namespace, "crash-down-1",
                        lambda i: any(a["result"] == "Succeeded" for a in attempts_of(i)), 60, "attempt succeeded")
    [attempt] = attempts_of(inc)
    assert attempt["restartedAt"] == stamp
    # One restart: the original ReplicaSet plus exactly one new one.
    assert len(replicasets(kube_client, namespace, "crash")) == 2
