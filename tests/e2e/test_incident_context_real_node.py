"""Incident context on the real node, through the real operator: real crash loops after a bad
rollout (the top hint names the rollout and its image change and suggests a rollback, which
restores health), a real OOM kill (the hint names OOMKilled and the memory limit), and a real
outage inside a maintenance window (no incident, no remediation) and after it (both).

Needs the machine's real kubelet node (PARAMEDIC_REAL_NODE=1 or auto); skips without one.
Workloads run Paramedic's own image (it has Python); a second tag of it stands for a new
image version, since nothing can be pulled here. Services get fixed ClusterIPs, reached
from this host through kube-proxy: the operator's probe needs no DNS.
"""

from __future__ import annotations

import httpx
import pytest

from devtools import node as devnode
from devtools.cluster import IMAGE, image_archive
from paramedic import kube
from tests.helpers import kubectl_paramedic, verified, wait_for

pytestmark = pytest.mark.e2e

BROKEN = "localhost/paramedic:broken"
SERVE = ["python", "-m", "http.server", "8080"]
EXIT_1 = ["python", "-c", "import sys; print('config missing', flush=True); sys.exit(1)"]


@pytest.fixture(scope="module")
def images(real_node) -> tuple[str, str]:
    """Paramedic's image loaded into the node's runtime, and a second name for it (the "new version")."""
    real_node.import_images([image_archive("paramedic")])
    real_node.ctr("images", "tag", "--force", IMAGE, BROKEN)
    return IMAGE, BROKEN


def workload(name: str, command: list[str], memory: str | None = None) -> dict:
    container: dict = {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": command}
    if memory:
        container["resources"] = {"limits": {"memory": memory}, "requests": {"memory": memory}}
    return {"metadata": {"name": name}, "spec": {
        "replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {
            **devnode.PLACEMENT, "terminationGracePeriodSeconds": 1, "containers": [container]}}}}


def status_of(client, ns, name) -> dict:
    return (client.get_or_none(kube.INCIDENTS, name, ns) or {}).get("status") or {}


def top_hint(client, ns, name, rule) -> dict | None:
    hints = status_of(client, ns, name).get("hints") or []
    return hints[0] if hints and hints[0]["rule"] == rule else None


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def serving(client, namespace: str, name: str, cluster_ip: str) -> str:
    """A Deployment serving HTTP on the real node behind a fixed ClusterIP; its URL once it answers."""
    url = f"http://{cluster_ip}:8080/"
    client.create(kube.DEPLOYMENTS, workload(name, SERVE), namespace)
    client.create(kube.SERVICES, {"metadata": {"name": name}, "spec": {
        "clusterIP": cluster_ip, "selector": {"app": name}, "ports": [{"port": 8080, "targetPort": 8080}]}},
        namespace)
    wait_for(lambda: answers(url), 120, f"{name} answering on its ClusterIP")
    return url


def test_a_bad_rollout_is_named_and_rolled_back_and_the_incident_resolves(
        real_node, images, kube_client, namespace, operator_factory):
    good, broken = images
    url = serving(kube_client, namespace, "api", "10.0.0.181")
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "api"}, "spec": {
        "target": {"kind": "Deployment", "name": "api"}, "evidence": {"logs": {"enabled": True, "tailLines": 5}},
        "probe": {"url": url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2,
                  "successThreshold": 2},
        # Off until the hint is seen, so the test shows the hint before the action it suggests.
        "remediation": {"enabled": False, "actions": [{"rollback": {"timeoutSeconds": 120}}],
                        "cooldownSeconds": 1, "verifySeconds": 90}}}, namespace)
    operator_factory(namespace, env={"PARAMEDIC_EVIDENCE_REFRESH_SECONDS": "2"})
    wait_for(lambda: (kube_client.get(kube.MONITORED_SERVICES, "api", namespace).get("status") or {}).get("health")
             == "Healthy", 60, "api Healthy")

    # The bad rollout: a new image whose container exits 1.
    kube_client.patch(kube.DEPLOYMENTS, "api", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": broken, "command": EXIT_1}]}}}}, namespace, content_type=kube.STRATEGIC)
    hint = wait_for(lambda: top_hint(kube_client, namespace, "api-down-1", "bad-rollout"), 120,
                    "the top hint blames the rollout")
    assert hint["suggestedAction"] == "rollback"
    assert f"image app: {good} → {broken}" in hint["summary"]
    assert "rolled out revision 2 (from 1)" in hint["summary"] and "exit code 1" in hint["summary"]
    assert hint["evidence"][0] == "rollout/2"
    st = status_of(kube_client, namespace, "api-down-1")
    failing = next(c for c in st["evidence"]["containers"] if c["ref"] == hint["evidence"][1])
    assert failing["revision"] == 2 and failing.get("lastExitCode", failing.get("exitCode")) == 1
    assert failing["node"] == devnode.NODE_NAME
    assert [n["name"] for n in st["evidence"]["nodes"]] == [devnode.NODE_NAME]
    # The service asked for logs: the failing container's last lines, read through the API server and kubelet.
    # The crashed container's own output, read through the API server and kubelet: its last run
    # while it waits to restart, else the run that just exited (the one before it is gone by then).
    log = wait_for(lambda: next((entry for entry in (status_of(kube_client, namespace, "api-down-1")
                                                     .get("evidence") or {}).get("logs") or []
                                 if "config missing" in entry["lines"]), None), 60,
                   "the failing container's log line")
    assert log["container"] == "app" and log["ref"] == f"log/{log['pod']}/app" and isinstance(log["previous"], bool)
    assert log["pod"] in {c["pod"] for c in st["evidence"]["containers"] if c.get("revision") == 2}
    types = [e["type"] for e in st["timeline"]]
    assert "probable-cause" in types and "rollback-suggested" in types

    # The suggested action, switched on: the rollback restores health and the incident resolves.
    kube_client.patch(kube.MONITORED_SERVICES, "api", {"spec": {"remediation": {"enabled": True}}}, namespace)
    inc = wait_for(lambda: (lambda i: i if i.get("spec", {}).get("state") == "resolved" and verified(i) else None)(
        kube_client.get(kube.INCIDENTS, "api-down-1", namespace)), 180, "incident resolved, the attempt verified")
    [attempt] = inc["status"]["remediation"]["attempts"]
    assert attempt["action"] == "rollback" and attempt["result"] == "Succeeded"
    acted = next(e["message"] for e in inc["status"]["timeline"] if e["type"] == "remediation-acted")
    assert "rolled Deployment/api back from revision 2 to 1" in acted
    dep = kube_client.get(kube.DEPLOYMENTS, "api", namespace)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == good
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"] == SERVE
    assert answers(url)


def test_a_real_oom_kill_is_named_with_the_memory_limit(real_node, images, kube_client, namespace,
                                                        operator_factory):
    # (No spec.evidence.logs here: logs stay out of incidents unless a service asks.)
    # Writes 200 MiB (bytes, not a lazily zeroed buffer) under a 64Mi limit.
    hog = ["python", "-c", "import time; b = b'x' * (200 * 1024 * 1024); time.sleep(3600)"]
    kube_client.create(kube.DEPLOYMENTS, workload("hog", hog, memory="64Mi"), namespace)
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "hog"}, "spec": {
        "target": {"kind": "Deployment", "name": "hog"}, "remediation": {"enabled": False}}}, namespace)
    kube_client.create(kube.INCIDENTS, {"metadata": {"name": "hog-restarts"}, "spec": {
        "service": "hog", "severity": "high", "title": "hog keeps restarting"}}, namespace)
    operator_factory(namespace, env={"PARAMEDIC_EVIDENCE_REFRESH_SECONDS": "2"})
    hint = wait_for(lambda: top_hint(kube_client, namespace, "hog-restarts", "oom-killed"), 120,
                    "the top hint names the OOM kill")
    assert hint["suggestedAction"] == "raise-memory-limit"
    assert hint["summary"].startswith("container app OOMKilled (exit code 137)")
    assert hint["summary"].endswith("memory limit 64Mi")
    ev = status_of(kube_client, namespace, "hog-restarts")["evidence"]
    [c] = [c for c in ev["containers"] if c["ref"] == hint["evidence"][0]]
    assert "OOMKilled" in (c.get("reason"), c.get("lastReason")) and c["memoryLimit"] == "64Mi"
    assert c["node"] == devnode.NODE_NAME
    assert ev["logs"] == []


def test_a_maintenance_window_holds_back_a_real_outages_incident_and_restart_and_the_next_outage_opens_one(
        real_node, images, kube_client, namespace, operator_factory, kubeconfig, run_kubectl):
    url = serving(kube_client, namespace, "web", "10.0.0.183")
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "web"}, "spec": {
        "target": {"kind": "Deployment", "name": "web"},
        "probe": {"url": url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2,
                  "successThreshold": 2},
        "remediation": {"actions": [{"restart": {"timeoutSeconds": 120}}], "cooldownSeconds": 1,
                        "verifySeconds": 60}}}, namespace)
    operator_factory(namespace)

    def svc_status() -> dict:
        return kube_client.get(kube.MONITORED_SERVICES, "web", namespace).get("status") or {}

    def restarted() -> str | None:
        dep = kube_client.get(kube.DEPLOYMENTS, "web", namespace)
        return (dep["spec"]["template"]["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")

    def scale(replicas: int) -> None:  # the outage: the real container stops, the ClusterIP refuses
        kube_client.patch(kube.DEPLOYMENTS, "web", {"spec": {"replicas": replicas}}, namespace)

    wait_for(lambda: svc_status().get("health") == "Healthy", 60, "web Healthy")
    out = kubectl_paramedic(kubeconfig, namespace, "maintain", "web", "--for", "60s", "-m", "node upgrade")
    assert out.returncode == 0, out.stderr
    window = wait_for(lambda: (lambda m: m if m.get("active") else None)(svc_status().get("maintenance") or {}),
                      30, "the service shows its window")
    assert window["reason"] == "node upgrade"
    assert window["until"] in run_kubectl("get", "msvc", "-n", namespace).stdout

    # The outage inside the window: Down, but no incident and no restart.
    scale(0)
    down = wait_for(lambda: (lambda st: st if st.get("health") == "Down" else None)(svc_status()), 60, "Down")
    assert (down.get("maintenance") or {}).get("active"), "the window ended before the outage was seen"
    scale(1)
    wait_for(lambda: svc_status().get("health") == "Healthy", 90, "Healthy again after the planned outage")
    assert kube_client.list(kube.INCIDENTS, namespace) == [] and restarted() is None

    # After the window, the next outage opens an incident and the restart runs.
    wait_for(lambda: not (svc_status().get("maintenance") or {}).get("active"), 90, "the window over")
    scale(0)
    incident = wait_for(lambda: next(iter(kube_client.list(kube.INCIDENTS, namespace)), None), 60, "an incident")
    assert incident["spec"]["source"] == "probe" and "maintenance" not in (incident.get("status") or {})
    wait_for(restarted, 60, "the restart")

