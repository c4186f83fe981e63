"""The webhook's watch-fed MonitoredService cache against the real API server."""

from __future__ import annotations

import time

import pytest

from paramedic import kube
from paramedic.informer import Directory, Informer
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def service(name: str, selector: str = "") -> dict:
    return {"metadata": {"name": name}, "spec": {"target": {"name": name}, "severity": "high",
                                                 "alertSelector": {"matchLabels": {"app": selector or name}}}}


def names(items: list[dict]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def count_lists(client: kube.KubeClient) -> list[str]:
    """Record the namespaces of the LIST fallback's calls (`client.list`; an informer's own
    LIST goes through `client.request`), so a test can tell an answer from the watch apart."""
    calls: list[str] = []
    original = client.list

    def list_(res, namespace=None, *args, **kwargs):
        calls.append(namespace)
        return original(res, namespace, *args, **kwargs)

    client.list = list_  # a spy on this one client
    return calls


def test_directory_lists_first_then_follows_the_watch(kube_client, kubeconfig, namespace):
    client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
    lists = count_lists(client)
    directory = Directory(client, kube.MONITORED_SERVICES)
    try:
        assert directory.items(namespace) == [], "an empty namespace is answered by a LIST"
        assert lists == [namespace]
        assert not directory.fresh(namespace), "no informer for a namespace without services"
        assert directory.items(namespace) == [] and len(lists) == 2, "still a LIST each time"

        kube_client.create(kube.MONITORED_SERVICES, service("checkout"), namespace)
        assert names(wait_for(lambda: directory.items(namespace), 10, "the new service listed")) == ["checkout"]
        wait_for(lambda: directory.fresh(namespace), 10, "a namespace with services to get an informer")
        listed = len(lists)

        # From now on, answers come from the watch, with no LIST: creations, edits and deletions show.
        kube_client.create(kube.MONITORED_SERVICES, service("cart"), namespace)
        wait_for(lambda: names(directory.items(namespace)) == ["cart", "checkout"], 10, "cart via the watch")
        kube_client.patch(kube.MONITORED_SERVICES, "cart",
                          {"spec": {"alertSelector": {"matchLabels": {"app": "basket"}}}}, namespace)
        wait_for(lambda: any(s["spec"]["alertSelector"]["matchLabels"]["app"] == "basket"
                             for s in directory.items(namespace)), 10, "the edit via the watch")
        kube_client.delete(kube.MONITORED_SERVICES, "checkout", namespace)
        wait_for(lambda: names(directory.items(namespace)) == ["cart"], 10, "the deletion via the watch")

        # A view (the routing index) is built once per change, not per call.
        built: list[int] = []

        def build(items: list[dict]) -> list[str]:
            built.append(1)
            return names(items)

        assert directory.view(namespace, build) == ["cart"] and directory.view(namespace, build) == ["cart"]
        assert len(built) == 1
        kube_client.create(kube.MONITORED_SERVICES, service("basket"), namespace)
        wait_for(lambda: directory.view(namespace, build) == ["basket", "cart"], 10, "the view rebuilt on a change")
        assert len(lists) == listed, "an answer came from a LIST, not the watch"
    finally:
        directory.stop()
        client.close()


def test_an_expired_resource_version_lists_again(kube_client, kubeconfig, namespace):
    kube_client.create(kube.MONITORED_SERVICES, service("api"), namespace)
    client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
    informer = Informer(client, kube.MONITORED_SERVICES, namespace)
    # A resourceVersion from before anything in etcd's history: the API server answers 410.
    informer._rv = "1"
    informer.start()
    try:
        wait_for(lambda: informer.fresh and names(informer.items()) == ["api"], 20, "a relist after 410 Gone")
        kube_client.create(kube.MONITORED_SERVICES, service("web"), namespace)
        wait_for(lambda: names(informer.items()) == ["api", "web"], 10, "watching after the relist")
    finally:
        informer.stop()
        client.close()


def test_a_broken_watch_stops_answering_after_a_while(kubeconfig, namespace, kube_client):
    kube_client.create(kube.MONITORED_SERVICES, service("api"), namespace)
    # A client whose credentials are refused after the first LIST: the watch keeps failing.
    good = kube.Connection.load(str(kubeconfig))
    calls = {"n": 0}

    def token() -> str | None:
        calls["n"] += 1
        return good.token() if calls["n"] == 1 else "Bearer wrong"

    client = kube.KubeClient(kube.Connection(host=good.host, verify=good.verify, token=token))
    informer = Informer(client, kube.MONITORED_SERVICES, namespace)
    started = time.monotonic()
    informer.start()
    try:
        wait_for(lambda: informer._listed, 10, "the first LIST")
        assert names(informer.items()) == ["api"]
        wait_for(lambda: not informer.fresh, 30, "the informer to give up answering")
        assert time.monotonic() - started >= 5, "not before the watch has been failing for a while"
    finally:
        informer.stop()
        client.close()
