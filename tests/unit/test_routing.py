"""Routing alerts by the target's own labels: the claim rule, its tie-breaks, and the pod-owner cache."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from paramedic import kube, metrics
from paramedic.domain import alert_routing as routing
from paramedic.domain.alert import Alert
from paramedic.owners import PodOwner, PodOwners

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def alert(**labels: str) -> Alert:
    return Alert(fingerprint="f", status="firing", labels={"alertname": "A", **labels}, annotations={},
                     starts_at=NOW)


def msvc(name: str, target: str | None = None, kind: str | None = None, ns: str = "shop",
         selector: dict | None = None) -> dict:
    spec: dict = {"target": {"name": target or name, **({"kind": kind} if kind else {})}}
    if selector is not None:
        spec["alertSelector"] = selector
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def claimed(a: Alert, services: list[dict], **kw) -> tuple[str, str] | None:
    c = routing.claim(a, services, **kw)
    return (c.name, c.rule) if c else None


# --- the claim rule ------------------------------------------------------------------


def test_kube_state_metrics_labels_name_the_target_without_an_alert_selector():
    services = [msvc("checkout"), msvc("db", kind="StatefulSet"), msvc("agent", kind="DaemonSet")]
    assert claimed(alert(namespace="shop", deployment="checkout"), services) == ("checkout", routing.CLAIM_WORKLOAD_LABEL)
    assert claimed(alert(namespace="shop", statefulset="db"), services) == ("db", routing.CLAIM_WORKLOAD_LABEL)
    assert claimed(alert(namespace="shop", daemonset="agent"), services) == ("agent", routing.CLAIM_WORKLOAD_LABEL)
    # The label must name the target's kind: a StatefulSet called checkout is not the Deployment.
    assert claimed(alert(namespace="shop", statefulset="checkout"), services) is None
    assert claimed(alert(namespace="shop", deployment="other"), services) is None


def test_the_target_is_claimed_only_in_the_alerts_own_namespace():
    services = [msvc("checkout", ns="shop")]
    assert claimed(alert(namespace="other", deployment="checkout"), services) is None
    assert claimed(alert(deployment="checkout"), services) is None  # no namespace label: no claim by target
    assert routing.pod_to_look_up(alert(pod="checkout-7d9f8b6c5d-x2x4z"), services) is None
    assert routing.pod_to_look_up(alert(namespace="other", pod="checkout-7d9f8b6c5d-x2x4z"), services) is None
    assert claimed(alert(namespace="other", pod="checkout-7d9f8b6c5d-x2x4z"), services,
                   pod_owner=routing.Workload("Deployment", "checkout")) is None


def test_an_explicit_alert_selector_wins_over_every_target_claim():
    services = [msvc("checkout"), msvc("zz-catch-all", target="other", selector={"matchLabels": {"team": "web"}})]
    a = alert(namespace="shop", deployment="checkout", team="web")
    assert claimed(a, services) == ("zz-catch-all", routing.CLAIM_SELECTOR)
    assert claimed(a, services, pod_owner=routing.Workload("Deployment", "checkout")) == \
        ("zz-catch-all", routing.CLAIM_SELECTOR)


def test_order_of_rules_service_label_then_workload_label_then_pod():
    services = [msvc("checkout"), msvc("payments", target="pay"), msvc("web", target="web")]
    a = alert(namespace="shop", service="payments", deployment="checkout", pod="web-7d9f8b6c5d-x2x4z")
    assert claimed(a, services, pod_owner=routing.Workload("Deployment", "web")) == ("payments", routing.CLAIM_SERVICE_LABEL)
    a = alert(namespace="shop", deployment="checkout", pod="web-7d9f8b6c5d-x2x4z")
    assert claimed(a, services, pod_owner=routing.Workload("Deployment", "web")) == \
        ("checkout", routing.CLAIM_WORKLOAD_LABEL)
    a = alert(namespace="shop", pod="web-7d9f8b6c5d-x2x4z")
    assert claimed(a, services, pod_owner=routing.Workload("Deployment", "web")) == ("web", routing.CLAIM_POD_OWNER)
    assert claimed(a, services) is None  # without the owner, nothing claims it


def test_ties_go_to_the_smallest_service_name_whatever_the_order():
    services = [msvc("zeta", target="checkout"), msvc("alpha", target="checkout"), msvc("mid", target="checkout")]
    for order in (services, list(reversed(services))):
        assert claimed(alert(namespace="shop", deployment="checkout"), order)[0] == "alpha"
        assert claimed(alert(namespace="shop", pod="checkout-6b8f7c9d5-bbbbb"), order,
                       pod_owner=routing.Workload("Deployment", "checkout"))[0] == "alpha"
    # Two workload labels naming two services' targets: still the smallest name.
    two = [msvc("web"), msvc("db", kind="StatefulSet")]
    assert claimed(alert(namespace="shop", deployment="web", statefulset="db"), two)[0] == "db"


def test_an_empty_selector_still_matches_nothing_but_the_target_claims():
    services = [msvc("checkout", selector={})]
    assert claimed(alert(namespace="shop", deployment="checkout"), services) == ("checkout", routing.CLAIM_WORKLOAD_LABEL)
    assert claimed(alert(namespace="shop", team="x"), services) is None


def test_target_kind_defaults_to_deployment_and_odd_targets_claim_nothing():
    assert routing.target_of(msvc("a")) == routing.Workload("Deployment", "a")
    assert routing.target_of({"spec": {"target": {"kind": "CronJob", "name": "x"}}}) is None
    assert routing.target_of({"spec": {}}) is None


# --- pods: when to look up, and the name fallback once the pod is gone -----------------


@pytest.mark.parametrize("pod, wanted", [
    ("checkout-7d9f8b6c5d-x2x4z", "checkout-7d9f8b6c5d-x2x4z"),
    ("checkout-0", "checkout-0"),
    ("cart-7d9f8b6c5d-x2x4z", None),       # no target could have named it: no API call
    ("checkout", None),
    ("Checkout-0", None),                   # not a pod name
])
def test_a_pod_is_looked_up_only_when_a_target_could_own_it(pod, wanted):
    services = [msvc("checkout")]
    assert routing.pod_to_look_up(alert(namespace="shop", pod=pod), services) == wanted


def test_generated_names_cut_at_58_characters_are_still_looked_up():
    long = "a" * 70
    pod = ("a" * 70 + "-")[:58] + "x2x4z"
    assert routing.pod_to_look_up(alert(namespace="shop", pod=pod), [msvc("svc", target=long)]) == pod


@pytest.mark.parametrize("kind, target, pod, fits", [
    ("Deployment", "checkout", "checkout-7d9f8b6c5d-x2x4z", True),
    ("Deployment", "checkout", "checkout-x2x4z", False),            # a DaemonSet's shape
    ("Deployment", "checkout", "checkout-api-7d9f8b6c5d-x2x4z", False),
    ("Deployment", "checkout", "checkout-7d9f8b6c5d-aaaaa", False),  # vowels never appear in generated names
    ("StatefulSet", "db", "db-0", True),
    ("StatefulSet", "db", "db-12", True),
    ("StatefulSet", "db", "db-01", False),
    ("StatefulSet", "db", "db-primary-0", False),
    ("DaemonSet", "agent", "agent-x2x4z", True),
    ("DaemonSet", "agent", "agent-7d9f8b6c5d-x2x4z", False),
])
def test_pod_names_a_controller_gives(kind, target, pod, fits):
    assert routing.pod_name_fits(routing.Workload(kind, target), pod) is fits


def test_a_gone_pod_is_claimed_by_its_name_only_after_the_owner_could_not_be_read():
    services = [msvc("checkout"), msvc("db", kind="StatefulSet")]
    a = alert(namespace="shop", pod="checkout-7d9f8b6c5d-x2x4z")
    assert claimed(a, services) is None
    assert claimed(a, services, pod_gone=True) == ("checkout", routing.CLAIM_POD_NAME)
    assert claimed(alert(namespace="shop", pod="db-3"), services, pod_gone=True) == ("db", routing.CLAIM_POD_NAME)
    # A live pod owned by something else is not claimed by its name.
    assert claimed(a, services, pod_owner=routing.Workload("Deployment", "other")) is None


def test_controller_of_reads_the_controller_owner_reference():
    pod = {"metadata": {"ownerReferences": [
        {"kind": "Node", "name": "n1"},
        {"kind": "ReplicaSet", "name": "checkout-7d9f8b6c5d", "controller": True}]}}
    assert routing.controller_of(pod) == routing.Workload("ReplicaSet", "checkout-7d9f8b6c5d")
    assert routing.controller_of({"metadata": {}}) is None


# --- the owner cache (a fake client: no API server) ----------------------------------


class FakeClient:
    def __init__(self, objects: dict[tuple[str, str, str], dict | Exception]):
        self.objects = objects
        self.gets: list[tuple[str, str, str]] = []

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        key = (res.plural, namespace or "", name)
        self.gets.append(key)
        value = self.objects.get(key)
        if isinstance(value, Exception):
            raise value
        return value


def owned(kind: str, name: str) -> dict:
    return {"metadata": {"ownerReferences": [{"kind": kind, "name": name, "controller": True}]}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pod_owner_through_its_replicaset_is_cached():
    client = FakeClient({("pods", "shop", "checkout-7d9f8b6c5d-x2x4z"): owned("ReplicaSet", "checkout-7d9f8b6c5d"),
                         ("pods", "shop", "checkout-7d9f8b6c5d-bbbbb"): owned("ReplicaSet", "checkout-7d9f8b6c5d"),
                         ("replicasets", "shop", "checkout-7d9f8b6c5d"): owned("Deployment", "checkout"),
                         ("pods", "shop", "db-0"): owned("StatefulSet", "db")})
    owners = PodOwners(client)
    before = metrics.POD_OWNER_LOOKUPS.labels("cached")._value.get()
    for _ in range(3):
        assert owners.owner("shop", "checkout-7d9f8b6c5d-x2x4z") == PodOwner(routing.Workload("Deployment", "checkout"))
    assert owners.owner("shop", "checkout-7d9f8b6c5d-bbbbb").workload == routing.Workload("Deployment", "checkout")
    assert owners.owner("shop", "db-0").workload == routing.Workload("StatefulSet", "db")
    # One GET per pod and one for their shared ReplicaSet.
    assert client.gets == [("pods", "shop", "checkout-7d9f8b6c5d-x2x4z"), ("replicasets", "shop", "checkout-7d9f8b6c5d"),
                           ("pods", "shop", "checkout-7d9f8b6c5d-bbbbb"), ("pods", "shop", "db-0")]
    assert metrics.POD_OWNER_LOOKUPS.labels("cached")._value.get() - before == 2


def test_gone_pods_forbidden_reads_and_bare_pods():
    client = FakeClient({("pods", "shop", "bare"): {"metadata": {}},
                         ("pods", "locked", "web-0"): kube.ApiError(403, "forbidden", "Forbidden")})
    owners = PodOwners(client)
    assert owners.owner("shop", "gone-0") == PodOwner(None, exists=False)
    assert owners.owner("shop", "bare") == PodOwner(None, exists=True)
    assert owners.owner("locked", "web-0") == PodOwner(None, exists=True)  # unknown, never guessed by name


def test_other_api_errors_propagate_so_the_sender_retries():
    client = FakeClient({("pods", "shop", "web-0"): kube.ApiError(500, "boom")})
    with pytest.raises(kube.ApiError):
        PodOwners(client).owner("shop", "web-0")


def test_cache_is_bounded_in_size_and_age():
    clock = Clock()
    client = FakeClient({("pods", "shop", f"p-{i}"): owned("StatefulSet", "p") for i in range(10)})
    owners = PodOwners(client, size=4, ttl=60, missing_ttl=5, clock=clock)
    for i in range(10):
        owners.owner("shop", f"p-{i}")
    assert len(owners) == 4
    client.gets.clear()
    owners.owner("shop", "p-9")
    assert client.gets == []  # recent: cached
    owners.owner("shop", "p-0")
    assert client.gets == [("pods", "shop", "p-0")]  # evicted: read again
    clock.now = 61
    owners.owner("shop", "p-9")
    assert client.gets[-1] == ("pods", "shop", "p-9")  # expired: read again
    owners.owner("shop", "missing-0")
    clock.now = 67
    owners.owner("shop", "missing-0")
    assert client.gets.count(("pods", "shop", "missing-0")) == 2  # "no such pod" is trusted for less long


# --- the router: lookups only when no cheaper rule claims ------------------------------


class RouterClient(FakeClient):
    def __init__(self, services: dict[str, list[dict]], objects: dict) -> None:
        super().__init__(objects)
        self.services = services

    def list(self, res: kube.Resource, namespace: str | None = None, **kw) -> list[dict]:
        return self.services.get(namespace or "", [])


def test_router_reads_pods_only_for_alerts_no_cheaper_rule_claims():
    from paramedic.ingest import _Router
    from paramedic.settings import Settings

    client = RouterClient(
        {"shop": [msvc("checkout", selector={"matchLabels": {"app": "checkout"}}), msvc("web")], "other": []},
        {("pods", "shop", "web-7d9f8b6c5d-x2x4z"): owned("ReplicaSet", "web-7d9f8b6c5d"),
         ("replicasets", "shop", "web-7d9f8b6c5d"): owned("Deployment", "web")})
    router = _Router(client, Settings(namespace="paramedic"), owners=PodOwners(client))
    alerts = [
        alert(namespace="shop", app="checkout", pod="web-7d9f8b6c5d-x2x4z"),   # the selector decides
        alert(namespace="shop", deployment="web", pod="web-7d9f8b6c5d-x2x4z", instance="2"),  # the label decides
        alert(namespace="shop", pod="web-7d9f8b6c5d-x2x4z", instance="3"),     # only the owner can
        alert(namespace="shop", pod="cart-7d9f8b6c5d-x2x4z"),                  # no target could own it
        alert(namespace="other", pod="web-7d9f8b6c5d-x2x4z"),                  # not web's namespace
    ]
    groups = router.route([dataclasses.replace(a, fingerprint=str(i)) for i, a in enumerate(alerts)])
    by_service = {key[1]: [a.fingerprint for a in g.alerts] for key, g in groups.items() if g.managed}
    assert by_service == {"checkout": ["0"], "web": ["1", "2"]}
    workload_reads = [g for g in client.gets if g[0] in ("pods", "replicasets")]
    assert workload_reads == [("pods", "shop", "web-7d9f8b6c5d-x2x4z"), ("replicasets", "shop", "web-7d9f8b6c5d")]


def test_routing_table_prefix_check_agrees_with_could_own_pod():
    targets = [msvc("web"), msvc("web-api"), msvc("db", kind="StatefulSet"), msvc("x" * 70)]
    table = routing.RoutingTable(targets)
    pods = ["web-7d9f8b6c5d-x2x4z", "web-api-7d9f8b6c5d-x2x4z", "web", "web-", "db-0", "dbx-0", "cart-1",
            ("x" * 70 + "-")[:58] + "bcdfg", "x" * 57]
    for pod in pods:
        expected = any(routing.could_own_pod(routing.target_of(s), pod) for s in targets)
        assert table.could_own("shop", pod) is expected, pod
        assert table.could_own("other", pod) is False


def test_a_table_scopes_itself_to_the_alerts_namespace():
    table = routing.RoutingTable([msvc("checkout", ns="shop"), msvc("checkout", ns="other", target="else")])
    assert claimed(alert(namespace="shop", deployment="checkout"), table) == ("checkout", routing.CLAIM_WORKLOAD_LABEL)
    assert claimed(alert(namespace="other", deployment="checkout"), table) is None
    assert claimed(alert(namespace="other", deployment="else"), table) == ("checkout", routing.CLAIM_WORKLOAD_LABEL)
