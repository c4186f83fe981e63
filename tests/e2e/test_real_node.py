"""The real node: kubelet, containerd 2, runc and CNI beside kwok's fake node."""

from __future__ import annotations

import json
import subprocess

import pytest

from devtools import node as devnode
from devtools.cluster import PAUSE_IMAGE
from paramedic import kube
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e


def pause_pod(name: str, placement: dict | None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {**(placement or {}), "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}]}}


def test_the_real_node_is_ready_tainted_and_runs_beside_kwok(real_node, kube_client):
    node = kube_client.get(kube.NODES, devnode.NODE_NAME)
    assert {"key": "paramedic.dev/real-node", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["metadata"]["labels"]["paramedic.dev/node"] == "real"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == devnode.GATEWAY
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
    assert kube_client.get_or_none(kube.NODES, "kwok-node-0") is not None


def test_only_pods_that_ask_for_it_land_on_the_real_node(real_node, kube_client, namespace, run_kubectl):
    kube_client.create(kube.PODS, pause_pod("real", devnode.PLACEMENT), namespace)
    kube_client.create(kube.PODS, pause_pod("fake", None), namespace)

    def running(name):
        pod = kube_client.get(kube.PODS, name, namespace)
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    real = wait_for(lambda: running("real"), 60, "the pause pod Running on the real node")
    fake = wait_for(lambda: running("fake"), 60, "the pod without toleration Running on kwok")
    assert real["spec"]["nodeName"] == devnode.NODE_NAME
    assert fake["spec"]["nodeName"] == "kwok-node-0"
    cid = real["status"]["containerStatuses"][0]["containerID"]
    assert cid.startswith("containerd://")
    # A real container: containerd runs a task for it, with a real pid.
    tasks = real_node.ctr("tasks", "ls").stdout
    assert cid.removeprefix("containerd://") in tasks
    assert real["status"]["podIP"].startswith("10.77.0.")


def test_the_api_server_reaches_the_kubelet_by_address_for_logs(real_node, kube_client, namespace, run_kubectl):
    kube_client.create(kube.PODS, pause_pod("logs", devnode.PLACEMENT), namespace)
    wait_object(kube_client, kube.PODS, "logs", namespace, lambda p: p["status"]["phase"] == "Running", 60,
                "pod Running")
    # kubectl logs goes API server → kubelet (by InternalIP, with its client certificate).
    out = run_kubectl("logs", "-n", namespace, "logs", check=False)
    assert out.returncode == 0, out.stderr


def test_cluster_dns_answers_services_and_nothing_else(real_node, kube_client):
    from dnslib import QTYPE, RCODE, DNSRecord

    def ask(name):
        return DNSRecord.parse(DNSRecord.question(name, "A").send(devnode.GATEWAY, 53, timeout=3))

    ok = ask("kubernetes.default.svc.cluster.local")
    assert [str(r.rdata) for r in ok.rr if r.rtype == QTYPE.A] == ["10.0.0.1"]
    assert ask("example.com").header.rcode == RCODE.NXDOMAIN


def test_the_network_stays_on_this_machine(real_node):
    rules = subprocess.run(["iptables", "-S", devnode.GUARD_CHAIN], capture_output=True, text=True, check=True).stdout
    assert f"-A {devnode.GUARD_CHAIN} -i {devnode.BRIDGE} -o {devnode.BRIDGE} -j RETURN" in rules
    assert f"-A {devnode.GUARD_CHAIN} -i {devnode.BRIDGE} -j DROP" in rules
    assert f"-A {devnode.GUARD_CHAIN} -o {devnode.BRIDGE} -j DROP" in rules
    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True).stdout)
    by_dst = {r["dst"]: r for r in routes}
    assert by_dst[devnode.SERVICE_CIDR]["dev"] == devnode.BRIDGE
    assert by_dst[devnode.KWOK_POD_CIDR]["type"] == "blackhole"


def test_one_real_node_per_machine(real_node, tmp_path):
    other = devnode.RealNode(tmp_path / "other", real_node.bin_dir, log=lambda m: None)
    with pytest.raises(devnode.NodeError, match="already runs on this machine"):
        other.acquire()


def test_an_image_missing_from_the_node_is_never_pulled_from_anywhere(real_node, kube_client, namespace):
    # "localhost/…" keeps this test on loopback even if the guard failed: the failure would then
    # name localhost, not the closed port every pull is sent to.
    pod = pause_pod("nopull", devnode.PLACEMENT)
    pod["spec"]["containers"][0].update(image="localhost/not-on-this-node:1", imagePullPolicy="Always")
    kube_client.create(kube.PODS, pod, namespace)

    def pull_error():
        for cs in (kube_client.get(kube.PODS, "nopull", namespace).get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") and waiting.get("message"):
                return waiting["message"]
        return None

    message = wait_for(pull_error, 60, "the pull to fail")
    assert devnode.NO_REGISTRY.removeprefix("http://") in message, message
