"""The chart's operator is highly available on the real node: two replicas, both Ready, share
the shards through their Leases; a service is handled by one of them (`status.handledBy`);
that replica's pod is deleted while the service breaks, and the other takes the service over
within 30 s and heals it: incident opened, Deployment restarted, incident resolved.

Installed as `make cluster-deploy` installs it (devtools.deploy.chart_values: the image
loaded into the node, its placement), watching one namespace. Needs the machine's real node.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import httpx
import pytest
import yaml

from devtools import node as devnode
from devtools.cluster import IMAGE, REPO, tools_bin
from devtools.deploy import chart_values
from paramedic import kube
from paramedic.domain import sharding
from tests.e2e.test_in_cluster import app_namespace, image, run  # noqa: F401  (fixtures)
from tests.helpers import uninstall_release, wait_for, wait_object

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "paramedic"
DEMO_SERVICE = REPO / "hack" / "demo" / "demo_service.py"
CONFIGMAPS = kube.Resource("", "v1", "configmaps", "ConfigMap")
OPERATOR = {"app.kubernetes.io/component": "operator"}
MOVE_SECONDS = 30


def live_pods(client: kube.KubeClient, namespace: str, labels: dict[str, str]) -> list[dict]:
    return [p for p in client.list(kube.PODS, namespace, labels=labels) if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def shard_holders(client: kube.KubeClient, namespace: str) -> dict[str, str]:
    """Each shard Lease's holder ("" when free)."""
    return {lease["metadata"]["name"]: lease["spec"].get("holderIdentity") or ""
            for lease in client.list(kube.LEASES, namespace, labels={sharding.LABEL: sharding.SHARD})}


def web(namespace: str) -> list[dict]:
    """The demo's breakable service (hack/demo/demo_service.py: /healthz fails once POST /break,
    until a restart) as a Deployment on the real node, its Service, and its MonitoredService."""
    labels = {"app": "web"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                      "metadata": {"labels": labels}, "spec": {
                          **devnode.PLACEMENT, "terminationGracePeriodSeconds": 1,
                          "containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "Never",
                                          "command": ["python", "/app/demo_service.py",
                                                      "--host", "0.0.0.0", "--port", "8080"],
                                          "ports": [{"containerPort": 8080}],
                                          "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                             "periodSeconds": 2},
                                          "volumeMounts": [{"name": "code", "mountPath": "/app"}]}],
                          "volumes": [{"name": "code", "configMap": {"name": "web-code"}}]}}}}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-code", "namespace": namespace},
         "data": {"demo_service.py": DEMO_SERVICE.read_text()}},
        deployment,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}},
        {"apiVersion": "paramedic.dev/v1alpha1", "kind": "MonitoredService",
         "metadata": {"name": "web", "namespace": namespace},
         "spec": {"team": "web", "target": {"kind": "Deployment", "name": "web"},
                  "probe": {"service": {"name": "web", "port": 8080, "path": "/healthz"}, "intervalSeconds": 2,
                            "timeoutSeconds": 2, "failureThreshold": 2, "successThreshold": 1},
                  "remediation": {"actions": [{"restart": {}}], "cooldownSeconds": 1, "verifySeconds": 10},
                  "autoResolve": True}},
    ]


def web_pod_ip(client: kube.KubeClient, namespace: str) -> str:
    [pod] = [p for p in live_pods(client, namespace, {"app": "web"}) if ready(p)]
    return pod["status"]["podIP"]


def test_two_operator_replicas_share_the_shards_and_one_takes_over_a_service_when_the_others_pod_goes(
        image, kubeconfig, kube_client, app_namespace, run_kubectl, tmp_path):  # noqa: F811
    suffix = uuid.uuid4().hex[:6]
    release, release_ns = f"ha{suffix}", f"ha-{suffix}"
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "c"), "HELM_CONFIG_HOME": str(tmp_path / "g"),
           "HELM_DATA_HOME": str(tmp_path / "d")}
    values = chart_values()
    values.update(allNamespaces=False, watchNamespaces=[app_namespace])
    # The receiver and the console are not this test's subject: one receiver, no console, fewer pods to run.
    values["webhook"]["replicas"] = 1
    values["console"]["enabled"] = False
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    helm = [str(tools_bin() / "helm"), "--kubeconfig", str(kubeconfig)]
    run(*helm, "install", release, str(CHART), "--namespace", release_ns, "--create-namespace",
        "-f", str(tmp_path / "values.yaml"), "--wait", "--timeout", "4m", env=env)
    try:
        # Two operator pods on the real node, both Ready, each named in its Leases by its pod name.
        pods = live_pods(kube_client, release_ns, OPERATOR)
        assert len(pods) == 2 and all(ready(p) and p["spec"]["nodeName"] == devnode.NODE_NAME for p in pods), \
            [(p["metadata"]["name"], p["spec"].get("nodeName"), ready(p)) for p in pods]
        names = {p["metadata"]["name"] for p in pods}
        holders = wait_for(lambda: (lambda h: h if len(h) == 32 and sorted(
            list(h.values()).count(n) for n in names) == [16, 16] else None)(shard_holders(kube_client, release_ns)),
            60, "the 32 shards held, 16 by each replica")
        members = kube_client.list(kube.LEASES, release_ns, labels={sharding.LABEL: sharding.MEMBER})
        assert {m["spec"]["holderIdentity"] for m in members} == names

        run_kubectl("apply", "-f", "-", input=yaml.safe_dump_all(web(app_namespace)))
        svc = wait_object(kube_client, kube.MONITORED_SERVICES, "web", app_namespace,
                          lambda s: s["status"]["health"] == "Healthy" and s["status"]["handledBy"] in names, 120,
                          "web probed Healthy by one of the replicas")
        first = svc["status"]["handledBy"]
        [other] = names - {first}
        shard = sharding.shard_lease(sharding.shard_of(app_namespace, "web", 32))
        assert holders[shard] == first  # the replica handling it is its shard's holder
        restarts_before = (kube_client.get(kube.DEPLOYMENTS, "web", app_namespace)["spec"]["template"]["metadata"]
                           .get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")
        pod_ip = web_pod_ip(kube_client, app_namespace)

        # The handling replica's pod goes (a drain, a rollout), and the service breaks meanwhile.
        run_kubectl("delete", "pod", "-n", release_ns, first, "--wait=false")
        gone = time.monotonic()
        assert httpx.post(f"http://{pod_ip}:8080/break", timeout=5).status_code == 200
        assert httpx.get(f"http://{pod_ip}:8080/healthz", timeout=5).status_code == 500

        moved = wait_object(kube_client, kube.MONITORED_SERVICES, "web", app_namespace,
                            lambda s: s["status"]["handledBy"] not in ("", None, first), MOVE_SECONDS,
                            f"web handled by another replica than {first} within {MOVE_SECONDS}s")
        took = time.monotonic() - gone
        now = {p["metadata"]["name"] for p in live_pods(kube_client, release_ns, OPERATOR)}
        # The survivor, or the Deployment's replacement pod once it joined and got its share.
        assert moved["status"]["handledBy"] in now | {other}, (moved["status"]["handledBy"], now)

        incident = wait_for(lambda: (lambda incs: incs[0] if len(incs) == 1 else None)(
            [i for i in kube_client.list(kube.INCIDENTS, app_namespace) if i["spec"].get("service") == "web"]), 90,
            "one incident for the broken web")
        name = incident["metadata"]["name"]
        wait_object(kube_client, kube.DEPLOYMENTS, "web", app_namespace,
                    lambda d: d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
                    != restarts_before, 90, "web restarted by the replica that took it over")
        resolved = wait_object(kube_client, kube.INCIDENTS, name, app_namespace,
                               lambda i: i["spec"]["state"] == "resolved", 180,
                               "the incident resolved once web's new container is healthy")
        assert len([i for i in kube_client.list(kube.INCIDENTS, app_namespace)
                    if i["spec"].get("service") == "web"]) == 1, "one incident, whichever replica saw the outage"
        wait_object(kube_client, kube.MONITORED_SERVICES, "web", app_namespace,
                    lambda s: s["status"]["health"] == "Healthy", 60, "web Healthy again")

        # Afterwards the Deployment's new operator pod has joined: the shards are shared by the two live pods.
        wait_for(lambda: len(live_pods(kube_client, release_ns, OPERATOR)) == 2
                 and all(ready(p) for p in live_pods(kube_client, release_ns, OPERATOR)), 120,
                 "the operator's replacement pod Ready")
        live = {p["metadata"]["name"] for p in live_pods(kube_client, release_ns, OPERATOR)}
        wait_for(lambda: set(shard_holders(kube_client, release_ns).values()) == live, 60,
                 "the shards shared by the two live replicas again")
        print(json.dumps({"handledBy": [first, moved["status"]["handledBy"]], "movedSeconds": round(took, 1),
                          "incident": name, "timeline": len(resolved["status"].get("timeline") or [])}))
    finally:
        out = uninstall_release(helm, env, kubeconfig, release, release_ns)
        kube_client.delete(kube.NAMESPACES, release_ns)
        assert out.returncode == 0, out.stderr
