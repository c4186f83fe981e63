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
from tests.helpers import kubectl_paramedic, verified, wait_for, wait_object

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


def status_when(client, ns, name, predicate, timeout, what) -> dict:
    """The incident's status once `predicate` holds over all of it."""
    return wait_object(client, kube.INCIDENTS, name, ns, lambda i: predicate(i["status"]), timeout, what)["status"]


def top_hint(status: dict, rule: str) -> dict | None:
    hints = status.get("hints") or []
    return hints[0] if hints and hints[0]["rule"] == rule else None


def service_when(client, ns, name, predicate, timeout, what) -> dict:
    """The MonitoredService's status once `predicate` holds over all of it."""
    return wait_object(client, kube.MONITORED_SERVICES, name, ns, lambda s: predicate(s["status"]), timeout,
                       what)["status"]


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
    service_when(kube_client, namespace, "api", lambda s: s["health"] == "Healthy", 60, "api Healthy")

    # The bad rollout: a new image whose container exits 1.
    kube_client.patch(kube.DEPLOYMENTS, "api", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": broken, "command": EXIT_1}]}}}}, namespace, content_type=kube.STRATEGIC)
    # The hint and the evidence it cites, in one read.
    st = status_when(kube_client, namespace, "api-down-1",
                     lambda s: top_hint(s, "bad-rollout") and s["evidence"]["containers"] and s["evidence"]["nodes"],
                     120, "the top hint blames the rollout")
    hint = top_hint(st, "bad-rollout")
    assert hint["suggestedAction"] == "rollback"
    assert f"image app: {good} → {broken}" in hint["summary"]
    assert "rolled out revision 2 (from 1)" in hint["summary"] and "exit code 1" in hint["summary"]
    assert hint["evidence"][0] == "rollout/2"
    failing = next(c for c in st["evidence"]["containers"] if c["ref"] == hint["evidence"][1])
    assert failing["revision"] == 2 and failing.get("lastExitCode", failing.get("exitCode")) == 1
    assert failing["node"] == devnode.NODE_NAME
    assert [n["name"] for n in st["evidence"]["nodes"]] == [devnode.NODE_NAME]
    # The service asked for logs: the failing container's last lines, read through the API server and kubelet.
    # The crashed container's own output, read through the API server and kubelet: its last run
    # while it waits to restart, else the run that just exited (the one before it is gone by then).
    def log_line(status: dict) -> dict | None:
        return next((entry for entry in status["evidence"].get("logs") or []
                     if "config missing" in entry["lines"]), None)

    # The log, the containers it was read from and the timeline, in one read.
    st = status_when(kube_client, namespace, "api-down-1",
                     lambda s: log_line(s)
                     and {"probable-cause", "rollback-suggested"} <= {e["type"] for e in s["timeline"]},
                     60, "the failing container's log line")
    log = log_line(st)
    assert log["container"] == "app" and log["ref"] == f"log/{log['pod']}/app" and isinstance(log["previous"], bool)
    assert log["pod"] in {c["pod"] for c in st["evidence"]["containers"] if c.get("revision") == 2}
    types = [e["type"] for e in st["timeline"]]
    assert "probable-cause" in types and "rollback-suggested" in types

    # The suggested action, switched on: the rollback restores health and the incident resolves.
    kube_client.patch(kube.MONITORED_SERVICES, "api", {"spec": {"remediation": {"enabled": True}}}, namespace)
    inc = wait_object(kube_client, kube.INCIDENTS, "api-down-1", namespace,
                      lambda i: i["spec"]["state"] == "resolved" and verified(i)
                      and any(e["type"] == "remediation-acted" for e in i["status"]["timeline"]), 180,
                      "incident resolved, the attempt verified")
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
    st = status_when(kube_client, namespace, "hog-restarts", lambda s: top_hint(s, "oom-killed"), 120,
                     "the top hint names the OOM kill")
    hint = top_hint(st, "oom-killed")
    assert hint["suggestedAction"] == "raise-memory-limit"
    assert hint["summary"].startswith("container app OOMKilled (exit code 137)")
    assert hint["summary"].endswith("memory limit 64Mi")
    ev = st["evidence"]
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

    def web_when(predicate, timeout, what) -> dict:
        return service_when(kube_client, namespace, "web", predicate, timeout, what)

    def restarted() -> str | None:
        dep = kube_client.get(kube.DEPLOYMENTS, "web", namespace)
        return (dep["spec"]["template"]["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")

    def scale(replicas: int) -> None:  # the outage: the real container stops, the ClusterIP refuses
        kube_client.patch(kube.DEPLOYMENTS, "web", {"spec": {"replicas": replicas}}, namespace)

    web_when(lambda s: s["health"] == "Healthy", 60, "web Healthy")
    out = kubectl_paramedic(kubeconfig, namespace, "maintain", "web", "--for", "60s", "-m", "node upgrade")
    assert out.returncode == 0, out.stderr
    window = web_when(lambda s: s["maintenance"]["active"], 30, "the service shows its window")["maintenance"]
    assert window["reason"] == "node upgrade"
    assert window["until"] in run_kubectl("get", "msvc", "-n", namespace).stdout

    # The outage inside the window: Down, but no incident and no restart.
    scale(0)
    down = web_when(lambda s: s["health"] == "Down", 60, "Down")
    assert (down.get("maintenance") or {}).get("active"), "the window ended before the outage was seen"
    scale(1)
    web_when(lambda s: s["health"] == "Healthy", 90, "Healthy again after the planned outage")
    assert kube_client.list(kube.INCIDENTS, namespace) == [] and restarted() is None

    # After the window, the next outage opens an incident and the restart runs.
    web_when(lambda s: not (s.get("maintenance") or {}).get("active"), 90, "the window over")
    scale(0)
    incident = wait_for(lambda: next(iter(kube_client.list(kube.INCIDENTS, namespace)), None), 60, "an incident")
    assert incident["spec"]["source"] == "probe" and "maintenance" not in (incident.get("status") or {})
    wait_for(restarted, 60, "the restart")

