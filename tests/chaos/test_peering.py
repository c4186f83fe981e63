"""Two operator replicas at once, with Kopf peering (no --standalone): one acts, the other
stands by, nothing is remediated twice, and the standby takes over when the active one stops."""

from __future__ import annotations

import pytest

from devtools.cluster import REPO
from paramedic import kube
from tests.chaos.test_operator_crash import incident, service, template_stamp
from tests.e2e.test_control_plane import deployment
from tests.helpers import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

PEERINGS = kube.Resource("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
PEERING_CRDS = REPO / "manifests" / "kopf-peering-crds.yaml"


@pytest.fixture
def peering(run_kubectl, kube_client, namespace) -> str:
    run_kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    run_kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(PEERING_CRDS))
    # An operator given --namespace uses the namespaced KopfPeering of that name.
    wait_for(lambda: kube_client.create(PEERINGS, {"metadata": {"name": "paramedic"}}, namespace), 30,
             "the KopfPeering created (its CRD servable)")
    return "paramedic"


def mitigated(client, ns, names) -> list[dict]:
    items = [client.get_or_none(kube.INCIDENTS, n, ns) for n in names]
    return items if all(i and i["spec"].get("state") == "mitigated" for i in items) else []


def check_exactly_once(client, ns, svcs: list[str], incidents: dict[str, str]) -> None:
    for svc in svcs:
        stamps = []
        for inc in (n for n, s in incidents.items() if s == svc):
            attempts = (client.get(kube.INCIDENTS, inc, ns)["status"].get("remediation") or {}).get("attempts") or []
            assert len(attempts) == 1, f"{inc}: {attempts}"
            stamps.append(attempts[0]["restartedAt"])
        rs = sorted(filter(None, (template_stamp(r) for r in client.list(kube.REPLICASETS, ns, labels={"app": svc}))))
        assert rs == sorted(stamps), f"{svc}: ReplicaSets {rs}, attempts {stamps}"



def test_two_replicas_one_acts_and_the_other_takes_over(kube_client, namespace, operators, kubeconfig, peering):
    svcs = [f"peer{i}" for i in range(4)]
    for name in svcs:
        kube_client.create(kube.DEPLOYMENTS, deployment(name, replicas=1), namespace)
        kube_client.create(kube.MONITORED_SERVICES, service(name), namespace)
    a = operators(kubeconfig, namespace, standalone=False, tag="a")
    b = operators(kubeconfig, namespace, standalone=False, tag="b")

    def both_peers():
        status = (kube_client.get(PEERINGS, peering, namespace).get("status") or {})
        return status if len(status) == 2 else None

    peers = wait_for(both_peers, 60, "both replicas registered in the KopfPeering")
    first = {f"{s}-inc0": s for s in svcs}
    for inc, svc in first.items():
        kube_client.create(kube.INCIDENTS, incident(inc, svc), namespace)
    try:
        wait_for(lambda: mitigated(kube_client, namespace, first), 90, "the incidents remediated by one replica")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; peers {peers}\n--- a:\n{a.logs()[-3000:]}\n--- b:\n{b.logs()[-3000:]}") from None
    check_exactly_once(kube_client, namespace, svcs, first)
    # Kopf logs each handled event: the standby handled none (it starts paused, silently).
    working = [op for op in (a, b) if "Handler 'incident_event'" in op.logs()]
    assert len(working) == 1, f"exactly one replica must act:\n--- a:\n{a.logs()[-3000:]}\n--- b:\n{b.logs()[-3000:]}"
    [active] = working
    standby = b if active is a else a

    # The active replica goes away (a rollout, a node drain): the standby takes over.
    active.stop()
    second = {f"{s}-inc1": s for s in svcs}
    for inc, svc in second.items():
        kube_client.create(kube.INCIDENTS, incident(inc, svc), namespace)
    wait_for(lambda: mitigated(kube_client, namespace, second), 120, "the standby remediating after the takeover")
    check_exactly_once(kube_client, namespace, svcs, {**first, **second})
    assert "Handler 'incident_event'" in standby.logs()
