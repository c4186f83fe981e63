"""The real `paramedic-operator` never waits silently: missing permissions, a missing Kopf
peering, an unreachable API server and bad credentials are each named in its log, and
fixing them lets it start without a restart."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from devtools.cluster import REPO, DevCluster, apply_crds, free_port, kubeconfig_yaml
from paramedic import kube
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e

PEERINGS = kube.Resource("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
PEERING_CRDS = REPO / "manifests" / "kopf-peering-crds.yaml"
FAST = {"PARAMEDIC_PREFLIGHT_INTERVAL_SECONDS": "1"}


def service() -> dict:
    return {"metadata": {"name": "checkout"}, "spec": {"team": "payments", "target": {"name": "checkout"}}}


def has_ready(svc: dict) -> bool:
    """The operator wrote the MonitoredService's Ready condition: it is running, not waiting."""
    return any(c.get("type") == "Ready" for c in (svc.get("status") or {}).get("conditions") or [])


def reconciled(client: kube.KubeClient, ns: str) -> bool:
    return has_ready(client.get(kube.MONITORED_SERVICES, "checkout", ns))


def wait_reconciled(client: kube.KubeClient, ns: str, timeout: float, what: str) -> dict:
    return wait_object(client, kube.MONITORED_SERVICES, "checkout", ns, has_ready, timeout, what)


def cluster_of(kubeconfig: Path) -> tuple[str, Path]:
    cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    return cluster["server"], Path(cluster["certificate-authority"])


def operator_rules() -> list[dict]:
    docs = yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text())
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "paramedic-operator")
    return role["rules"]


def without(rules: list[dict], resource: str, verb: str) -> list[dict]:
    out = []
    for rule in rules:
        rule = dict(rule)
        if resource in rule["resources"] and rule["apiGroups"] == ["paramedic.dev"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        out.append(rule)
    return out


def log_line(proc, *parts: str) -> str | None:
    """The first log line holding every one of `parts`."""
    return next((line for line in proc.logs().splitlines() if all(p in line for p in parts)), None)


def test_missing_rbac_is_named_and_granting_it_starts_the_operator(kube_client, namespace, run_kubectl, kubeconfig,
                                                                   operators, tmp_path):
    ns = namespace
    rbac = kube.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
    bindings = kube.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
    sas = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")
    kube_client.create(sas, {"metadata": {"name": "op"}}, ns)
    # Everything the operator's ClusterRole grants, in this namespace, except list on incidents.
    kube_client.create(rbac, {"metadata": {"name": "op"}, "rules": without(operator_rules(), "incidents", "list")}, ns)
    kube_client.create(bindings, {"metadata": {"name": "op"},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": ns}]}, ns)
    token = run_kubectl("create", "token", "op", "-n", ns, "--duration=1h").stdout.strip()
    server, ca = cluster_of(kubeconfig)
    sa_config = tmp_path / "op-kubeconfig"
    sa_config.write_text(kubeconfig_yaml(server, ca, token, user="op"))
    kube_client.create(kube.MONITORED_SERVICES, service(), ns)
    port = free_port()

    proc = operators(sa_config, ns, env={**FAST, "PARAMEDIC_HEALTH_PORT": str(port)})
    line = wait_for(lambda: log_line(proc, "ERROR", "RBAC forbids"), 60, "the RBAC error")
    assert f"system:serviceaccount:{ns}:op" in line
    wait_for(lambda: f"  - list incidents.paramedic.dev in namespace {ns}" in proc.logs(), 5, "the missing verb")
    assert f"kubectl auth can-i list incidents.paramedic.dev -n {ns} --as=system:serviceaccount:{ns}:op" in proc.logs()
    # Exactly the missing permission: what the Role grants is not reported.
    assert "1 permission(s)" in line and "watch incidents.paramedic.dev" not in proc.logs()
    wait_for(lambda: log_line(proc, "ERROR", "still waiting for RBAC: list incidents.paramedic.dev"), 20,
             "the error repeated on re-checks")
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "waiting"
    assert f"list incidents.paramedic.dev in namespace {ns}" in health.json()["waitingFor"][0]
    assert not reconciled(kube_client, ns), "the operator must wait, not half-run"
    assert proc.proc.poll() is None

    kube_client.replace(rbac, "op", {"metadata": {"name": "op"}, "rules": operator_rules()}, ns)
    wait_for(lambda: log_line(proc, "preflight passed"), 30, "the preflight to pass once granted")
    # A Role cannot let it list namespaces: Kopf's scanning is off, or Kopf would retry that for a minute first.
    assert log_line(proc, "WARNING", "may not list namespaces cluster-wide", "Kopf's scanning is off")
    wait_reconciled(kube_client, ns, 20, "the MonitoredService reconciled, same process")
    assert proc.proc.poll() is None


def test_missing_peering_falls_back_to_standalone_loudly(kube_client, namespace, kubeconfig, operators):
    # No KopfPeering of this name exists, whether or not the session installed Kopf's CRDs:
    # Kopf alone would pause every watch for it, forever and silently.
    name = f"absent-{uuid.uuid4().hex[:6]}"
    kube_client.create(kube.MONITORED_SERVICES, service(), namespace)
    proc = operators(kubeconfig, namespace, standalone=False, extra_args=["--peering", name], env=FAST)
    line = wait_for(lambda: log_line(proc, "WARNING", f"Kopf peering '{name}' is unusable"), 60, "the fall-back line")
    assert "FALLING BACK TO STANDALONE" in line and "run only one" in line and "PARAMEDIC_PEERING_REQUIRED" in line
    assert "manifests/kopf-peering-crds.yaml" in line or f"kubectl -n {namespace} create -f -" in line
    wait_reconciled(kube_client, namespace, 60, "the MonitoredService reconciled, standalone")


def test_required_peering_is_waited_for_until_it_exists(kube_client, namespace, kubeconfig, run_kubectl, operators):
    run_kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    run_kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(PEERING_CRDS))
    kube_client.create(kube.MONITORED_SERVICES, service(), namespace)
    proc = operators(kubeconfig, namespace, standalone=False, extra_args=["--peering", "paramedic"],
                     env={**FAST, "PARAMEDIC_PEERING_REQUIRED": "true"})
    line = wait_for(lambda: log_line(proc, "ERROR", "Kopf peering 'paramedic' is unusable"), 60, "the peering error")
    assert f"the KopfPeering 'paramedic' does not exist in namespace {namespace}" in line
    assert f"kubectl -n {namespace} create -f -" in line and "FALLING BACK" not in proc.logs()
    wait_for(lambda: log_line(proc, "ERROR", "still waiting for peering paramedic"), 20, "re-checks")
    assert not reconciled(kube_client, namespace)

    wait_for(lambda: kube_client.create(PEERINGS, {"metadata": {"name": "paramedic"}}, namespace), 30,
             "the KopfPeering created (its CRD servable)")
    wait_for(lambda: log_line(proc, "preflight passed", "peering 'paramedic' ready"), 30, "the preflight to pass")
    wait_reconciled(kube_client, namespace, 60, "the MonitoredService reconciled, with peering")
    status = kube_client.get(PEERINGS, "paramedic", namespace).get("status") or {}
    assert len(status) == 1, "the operator joined the peering"


def test_unreachable_api_server_is_retried_loudly_with_backoff(kubeconfig, operators, tmp_path):
    server, ca = cluster_of(kubeconfig)
    nowhere = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    config = tmp_path / "nowhere-kubeconfig"
    config.write_text(kubeconfig_yaml(nowhere, ca, "whatever"))
    port = free_port()
    proc = operators(config, "default", env={"PARAMEDIC_HEALTH_PORT": str(port)}, tag="nowhere")
    wait_for(lambda: log_line(proc, "ERROR", "preflight attempt 3: cannot reach the API server at " + nowhere), 30,
             "three attempts logged")
    assert log_line(proc, "preflight attempt 1:", "retrying in 1s") and log_line(proc, "attempt 2:", "retrying in 2s")
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    assert health["status"] == "waiting" and "cannot reach the API server" in health["waitingFor"][0]
    assert proc.proc.poll() is None, "it keeps trying"


def test_bad_credentials_are_named(kubeconfig, operators, tmp_path):
    server, ca = cluster_of(kubeconfig)
    config = tmp_path / "bad-token-kubeconfig"
    config.write_text(kubeconfig_yaml(server, ca, "not-a-valid-token"))
    proc = operators(config, "default", tag="badtoken")
    line = wait_for(lambda: log_line(proc, "ERROR", "preflight attempt 2:"), 30, "two attempts logged")
    assert f"the API server at {server} refused the credentials from kubeconfig {config} (401 Unauthorized)" in line


def test_credentials_that_cannot_load_exit_2(operators, tmp_path):
    proc = operators(tmp_path / "no-such-kubeconfig", "default", tag="nokubeconfig")
    assert proc.proc.wait(timeout=60) == 2
    assert "cannot load Kubernetes credentials from kubeconfig" in proc.logs()


@pytest.fixture
def fresh_cluster(tmp_path):
    """A second control plane of its own, without any CRD: the newcomer's first cluster."""
    cluster = DevCluster(root=tmp_path / "fresh", kubeconfig=tmp_path / "fresh-kubeconfig")
    try:
        cluster.up(log=lambda msg: None)
        yield cluster.kubeconfig
    finally:
        cluster.down(quiet=True)


def test_a_fresh_cluster_names_the_missing_crds_and_starts_once_they_are_applied(fresh_cluster, operators):
    # `paramedic-operator -A` as a newcomer runs it: no Paramedic CRDs, no Kopf peering CRD.
    proc = operators(fresh_cluster, standalone=False, extra_args=["--all-namespaces"], env=FAST, tag="fresh")
    line = wait_for(lambda: log_line(proc, "ERROR", "Paramedic's CRDs are not installed"), 60, "the CRD error")
    for crd in ("incidents.paramedic.dev", "monitoredservices.paramedic.dev", "oncallschedules.paramedic.dev"):
        assert crd in line
    assert "kubectl apply -f manifests/crds/" in line
    wait_for(lambda: log_line(proc, "ERROR", "still waiting for CRDs"), 20, "re-checks")
    assert proc.proc.poll() is None

    apply_crds(fresh_cluster)
    client = kube.KubeClient(kube.Connection.load(str(fresh_cluster)))
    try:
        client.create(kube.MONITORED_SERVICES, service(), "default")
        wait_for(lambda: log_line(proc, "preflight passed"), 30, "the preflight to pass once the CRDs are applied")
        line = log_line(proc, "WARNING", "FALLING BACK TO STANDALONE")
        assert line and "clusterkopfpeerings.kopf.dev is not installed" in line
        assert "manifests/kopf-peering-crds.yaml" in line and "manifests/kopf-peering.yaml" in line
        wait_reconciled(client, "default", 30, "the MonitoredService reconciled")
    finally:
        client.close()
