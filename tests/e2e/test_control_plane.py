"""The local control plane is a real one: scheduling, kwok pods, rollouts."""

from __future__ import annotations

import pytest

from paramedic import kube
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "app", "image": "registry.local/demo:1"}]}},
        },
    }


def running_pods(client: kube.KubeClient, ns: str, app: str) -> list[dict]:
    pods = client.list(kube.PODS, ns, labels={"app": app})
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def test_node_is_ready(kube_client):
    nodes = kube_client.list(kube.NODES)
    assert any(c["type"] == "Ready" and c["status"] == "True"
               for n in nodes for c in n.get("status", {}).get("conditions", []))


def test_deployment_pods_run_and_rollout_restart_completes(kube_client, namespace, run_kubectl):
    kube_client.create(kube.DEPLOYMENTS, deployment("web"), namespace)
    first = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(running_pods(kube_client, namespace, "web")),
                     90, "2 Running pods")
    run_kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=90s")
    run_kubectl("-n", namespace, "rollout", "restart", "deployment/web")
    run_kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s")
    old = {p["metadata"]["name"] for p in first}

    def replaced():
        pods = running_pods(kube_client, namespace, "web")
        names = {p["metadata"]["name"] for p in pods}
        return len(pods) == 2 and not names & old

    wait_for(replaced, 90, "2 new Running pods after the restart")
    dep = kube_client.get(kube.DEPLOYMENTS, "web", namespace)
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]


def test_versions_are_real(run_kubectl):
    out = run_kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.' in out and "serverVersion" in out
