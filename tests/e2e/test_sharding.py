"""Operator replicas share the services through Leases, against the real control plane:
every live replica works, losing one loses nothing, and a returning one gets its share back."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from paramedic import kube
from paramedic.domain import sharding
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.e2e

REPLICAS = ("op-a", "op-b", "op-c")
PROBED = re.compile(r'^paramedic_probe_success\{namespace="([^"]+)",service="([^"]+)"\}', re.M)


def service(name: str, url: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "target": {"kind": "Deployment", "name": name},
        "probe": {"url": url, "intervalSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3}}}


def handled_by(client: kube.KubeClient, ns: str) -> dict[str, str]:
    return {s["metadata"]["name"]: s.get("status", {}).get("handledBy", "")
            for s in client.list(kube.MONITORED_SERVICES, ns)}


def probed(op) -> set[str]:
    """The services a replica probes (its probe gauges: removed when a service leaves it)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return set()
    return {name for _, name in PROBED.findall(text)}


def shares(owners: dict[str, str], total: int, who: tuple[str, ...]) -> Counter | None:
    """The count per replica once every service is handled by one of `who`, each within 20-50 %."""
    counts = Counter(owners.values())
    if sum(counts[w] for w in who) != total:
        return None
    return counts if all(0.2 * total <= counts[w] <= 0.5 * total for w in who) else None


@pytest.fixture
def target(tmp_path):
    """A healthy HTTP target in a process of its own: a server thread inside the test process
    would be starved by the test's own polling of 300 objects, and its timeouts open incidents."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "healthz").write_text("ok")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/healthz"
    wait_for(lambda: httpx.get(url, timeout=1).status_code == 200, 20, "the probe target")
    yield url
    proc.terminate()
    proc.wait(10)


def start(operators, kubeconfig, ns: str, identity: str):
    return operators(kubeconfig, ns, standalone=False, extra_args=["--identity", identity], tag=identity)


def test_three_replicas_share_300_services_and_survive_a_kill(kube_client, namespace, kubeconfig, operators,
                                                              target):
    total = 300
    for i in range(total):
        kube_client.create(kube.MONITORED_SERVICES, service(f"svc-{i:03d}", target), namespace)
    ops = {name: start(operators, kubeconfig, namespace, name) for name in REPLICAS}

    def settled() -> tuple[dict[str, str], dict[str, set[str]]] | None:
        """Every service handled, each replica holding 20-50 % of them, and one replica probing
        each service: a service's probe gauge is in its handler's metrics only. Read afresh at
        each look: shards may still move after the shares first look fair."""
        owners = handled_by(kube_client, namespace)
        if not shares(owners, total, REPLICAS):
            return None
        seen = {o: probed(ops[o]) for o in REPLICAS}
        return (owners, seen) if all(seen[o] == {s for s, w in owners.items() if w == o} for o in REPLICAS) else None

    owners, seen = wait_for(settled, 120, "the services shared, each replica probing exactly its own",
                            describe=lambda: f"handled: {dict(Counter(handled_by(kube_client, namespace).values()))}")
    assert sum(len(v) for v in seen.values()) == total

    orphans = {s for s, w in owners.items() if w == "op-b"}
    ops["op-b"].kill(signal.SIGKILL)
    # Lease 10 s + one round, then a reconcile of each service; how long it takes is measured
    # by bench/scale_out.py, the waits here only bound a loaded machine.
    wait_for(lambda: all(handled_by(kube_client, namespace)[s] in ("op-a", "op-c") for s in orphans) or None, 60,
             f"the {len(orphans)} services of the killed replica handled by another")
    wait_for(lambda: orphans <= probed(ops["op-a"]) | probed(ops["op-c"]) or None, 30,
             "the orphaned services probed again")
    assert kube_client.list(kube.INCIDENTS, namespace) == [], "the handover opened no incident"

    ops["op-b"] = start(operators, kubeconfig, namespace, "op-b")
    back = wait_for(lambda: shares(handled_by(kube_client, namespace), total, REPLICAS), 60,
                    "the returning replica given its share back")
    assert back["op-b"] >= 0.2 * total
    assert kube_client.list(kube.INCIDENTS, namespace) == []
    # Shards may still be moving (one handed over, not yet taken): wait for the whole picture.
    wait_for(lambda: set(shard_holders(kube_client, namespace)) == set(REPLICAS) or None, 30,
             "the 32 shards held by the three replicas", describe=lambda: str(shard_holders(kube_client, namespace)))
    assert sum(shard_holders(kube_client, namespace).values()) == 32


def shard_holders(client: kube.KubeClient, ns: str) -> Counter:
    leases = [sharding.Lease.of(b) for b in client.list(kube.LEASES, ns)]
    return Counter(lease.holder for lease in leases if lease.kind == sharding.SHARD)


def test_one_replica_takes_every_shard_with_no_setup_and_hands_them_over_on_a_clean_stop(
        kube_client, namespace, kubeconfig, operators, target):
    for i in range(20):
        kube_client.create(kube.MONITORED_SERVICES, service(f"svc-{i}", target), namespace)
    # Its Leases last 120 s: a successor that had to wait for them to expire would time out below.
    op = operators(kubeconfig, namespace, standalone=False, extra_args=["--identity", "solo"], tag="solo",
                   env={"PARAMEDIC_LEASE_SECONDS": "120"})
    wait_for(lambda: set(handled_by(kube_client, namespace).values()) == {"solo"} or None, 60,
             "every service handled by the one replica")
    leases = [sharding.Lease.of(b) for b in kube_client.list(kube.LEASES, namespace)]
    assert sorted(lease.shard for lease in leases if lease.kind == sharding.SHARD) == list(range(32))
    assert {lease.holder for lease in leases} == {"solo"}
    assert [lease.name for lease in leases if lease.kind == sharding.MEMBER] == [sharding.member_lease("solo")]

    op.stop()  # SIGTERM: a clean stop hands every shard over and leaves
    leases = [sharding.Lease.of(b) for b in kube_client.list(kube.LEASES, namespace)]
    assert [lease.holder for lease in leases if lease.kind == sharding.SHARD] == [""] * 32
    assert not [lease for lease in leases if lease.kind == sharding.MEMBER]
    # A successor takes over without waiting for any Lease to expire.
    start(operators, kubeconfig, namespace, "next")
    wait_for(lambda: set(handled_by(kube_client, namespace).values()) == {"next"} or None, 60,
             "every service handled by the successor")
