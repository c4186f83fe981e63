"""The real `paramedic-operator` never waits silently: missing permissions (its Leases' too),
missing CRDs or namespace, an unreachable API server and bad credentials are each named in
its log, and fixing them lets it start without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from devtools.cluster import REPO, DevCluster, apply_crds, free_port, kubeconfig_yaml
from paramedic import kube
from paramedic.domain import sharding
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e

ROLES = kube.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = kube.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
SERVICE_ACCOUNTS = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")
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


def operator_rules(kind: str = "ClusterRole", name: str = "paramedic-operator") -> list[dict]:
    docs = yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text())
    role = next(d for d in docs if d and d["kind"] == kind and d["metadata"]["name"] == name)
    return role["rules"]


def lease_rules() -> list[dict]:
    """The manifests' Role for the shards' Leases (in Paramedic's namespace)."""
    return operator_rules("Role", "paramedic-operator-leases")


def service_account_kubeconfig(client: kube.KubeClient, run_kubectl, kubeconfig: Path, ns: str, tmp_path: Path,
                               roles: dict[str, list[dict]]) -> Path:
    """A kubeconfig of ServiceAccount `op` in `ns`, bound there to a Role of each of `roles`' rules."""
    client.create(SERVICE_ACCOUNTS, {"metadata": {"name": "op"}}, ns)
    for name, rules in roles.items():
        client.create(ROLES, {"metadata": {"name": name}, "rules": rules}, ns)
        client.create(ROLE_BINDINGS, {"metadata": {"name": name},
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                                      "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": ns}]}, ns)
    token = run_kubectl("create", "token", "op", "-n", ns, "--duration=1h").stdout.strip()
    server, ca = cluster_of(kubeconfig)
    path = tmp_path / "op-kubeconfig"
    path.write_text(kubeconfig_yaml(server, ca, token, user="op"))
    return path


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
    # Everything the operator's ClusterRole grants, in this namespace, except list on incidents.
    sa_config = service_account_kubeconfig(kube_client, run_kubectl, kubeconfig, ns, tmp_path,
                                           {"op": without(operator_rules(), "incidents", "list")})
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

    kube_client.replace(ROLES, "op", {"metadata": {"name": "op"}, "rules": operator_rules()}, ns)
    wait_for(lambda: log_line(proc, "preflight passed"), 30, "the preflight to pass once granted")
    # A Role cannot let it list namespaces: Kopf's scanning is off, or Kopf would retry that for a minute first.
    assert log_line(proc, "WARNING", "may not list namespaces cluster-wide", "Kopf's scanning is off")
    wait_reconciled(kube_client, ns, 20, "the MonitoredService reconciled, same process")
    assert proc.proc.poll() is None


def test_a_missing_lease_right_is_named_and_waited_for_then_granting_it_starts_the_operator(
        kube_client, namespace, run_kubectl, kubeconfig, operators, tmp_path):
    ns = namespace  # also Paramedic's own namespace here (PARAMEDIC_NAMESPACE): where the Leases go
    # Everything the operator needs, but patch on its Leases (the renewals and hand-overs).
    without_patch = [{**r, "verbs": [v for v in r["verbs"] if v != "patch"]} for r in lease_rules()]
    sa_config = service_account_kubeconfig(kube_client, run_kubectl, kubeconfig, ns, tmp_path,
                                           {"op": operator_rules(), "op-leases": without_patch})
    kube_client.create(kube.MONITORED_SERVICES, service(), ns)
    port = free_port()
    identity = f"op-{ns}"
    proc = operators(sa_config, ns, standalone=False,
                     env={**FAST, "PARAMEDIC_HEALTH_PORT": str(port), "PARAMEDIC_IDENTITY": identity})
    user = f"system:serviceaccount:{ns}:op"
    line = wait_for(lambda: log_line(proc, "ERROR", "on leases.coordination.k8s.io"), 60, "the Lease error")
    assert f"RBAC forbids {user} patch on leases.coordination.k8s.io in namespace {ns}" in line
    assert "paramedic-operator-leases" in line and "--standalone" in line  # the fix, and the way round it
    assert f"kubectl auth can-i patch leases.coordination.k8s.io -n {ns} --as={user}" in line
    # Only the missing right: the ones the Roles grant are not reported.
    assert "permission(s) the operator needs" not in proc.logs()
    wait_for(lambda: log_line(proc, "ERROR", f"still waiting for Leases in namespace {ns}: patch"), 20,
             "the error repeated on re-checks")
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "waiting",
                                                           "waitingFor": [f"Leases in namespace {ns}: patch"]}
    assert not reconciled(kube_client, ns), "the operator must wait, not half-run"
    assert not kube_client.list(kube.LEASES, ns), "no Lease written while waiting"
    assert proc.proc.poll() is None

    kube_client.replace(ROLES, "op-leases", {"metadata": {"name": "op-leases"}, "rules": lease_rules()}, ns)
    wait_for(lambda: log_line(proc, "preflight passed", f"Leases usable in namespace {ns}"), 30,
             "the preflight to pass once granted")
    wait_reconciled(kube_client, ns, 60, "the MonitoredService reconciled, same process")
    # It works through its Leases: its member Lease and the shards, all held by it (alone).
    leases = wait_for(lambda: (lambda ls: ls if ls and all(lease["spec"].get("holderIdentity") == identity
                                                            for lease in ls) else None)(
        [lease for lease in kube_client.list(kube.LEASES, ns)
         if lease["metadata"].get("labels", {}).get(sharding.LABEL) == sharding.SHARD]), 30,
        "every shard's Lease held by the one replica")
    assert {lease["metadata"]["name"] for lease in leases} == {sharding.shard_lease(i) for i in range(32)}
    assert proc.proc.poll() is None


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


def test_a_fresh_cluster_names_the_missing_crds_and_namespace_and_starts_once_they_are_made(fresh_cluster, operators):
    # `paramedic-operator -A` as a newcomer runs it: no Paramedic CRDs, and no namespace
    # `paramedic` (PARAMEDIC_NAMESPACE's default) for the Leases.
    port = free_port()
    proc = operators(fresh_cluster, standalone=False, extra_args=["--all-namespaces"],
                     env={**FAST, "PARAMEDIC_HEALTH_PORT": str(port)}, tag="fresh")
    line = wait_for(lambda: log_line(proc, "ERROR", "Paramedic's CRDs are not installed"), 60, "the CRD error")
    for crd in ("incidents.paramedic.dev", "monitoredservices.paramedic.dev", "oncallschedules.paramedic.dev"):
        assert crd in line
    assert "kubectl apply -f manifests/crds/" in line
    line = wait_for(lambda: log_line(proc, "ERROR", "Paramedic's namespace paramedic (PARAMEDIC_NAMESPACE) does not "
                                                    "exist"), 20, "the namespace error")
    assert "kubectl create namespace paramedic" in line
    wait_for(lambda: log_line(proc, "ERROR", "still waiting for CRDs", "; namespace paramedic"), 20, "re-checks")
    assert proc.proc.poll() is None

    apply_crds(fresh_cluster)
    client = kube.KubeClient(kube.Connection.load(str(fresh_cluster)))
    try:
        client.create(kube.MONITORED_SERVICES, service(), "default")
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["waitingFor"] ==
                 ["namespace paramedic"], 60, "the CRDs no longer waited for, the namespace still")
        assert not reconciled(client, "default")
        client.create(kube.NAMESPACES, {"metadata": {"name": "paramedic"}})
        wait_for(lambda: log_line(proc, "preflight passed", "Leases usable in namespace paramedic"), 30,
                 "the preflight to pass once the CRDs are applied and the namespace made")
        wait_reconciled(client, "default", 30, "the MonitoredService reconciled")
    finally:
        client.close()
