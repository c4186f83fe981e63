"""The sync and async Kubernetes clients offer the same calls with the same parameters."""

import inspect

from paramedic import kube

SHARED = ("request", "get", "get_or_none", "list", "create", "replace", "patch", "delete", "from_settings")


def test_sync_and_async_clients_take_the_same_parameters():
    for name in SHARED:
        sync, async_ = getattr(kube.KubeClient, name), getattr(kube.AsyncKubeClient, name)
        assert inspect.signature(sync).parameters.keys() == inspect.signature(async_).parameters.keys(), name
        for p_sync, p_async in zip(inspect.signature(sync).parameters.values(),
                                   inspect.signature(async_).parameters.values(), strict=True):
            assert p_sync.default == p_async.default, (name, p_sync.name)


def test_list_params_follow_the_floor_unless_cached():
    floor = kube.ReadFloor()
    floor.see({"metadata": {"resourceVersion": "42"}})
    assert kube._list_params({"a": "b"}, "spec.x=y", False, floor) == {
        "labelSelector": "a=b", "fieldSelector": "spec.x=y", "resourceVersion": "42",
        "resourceVersionMatch": "NotOlderThan"}
    assert kube._list_params(None, None, True, floor) == {"resourceVersion": "0"}
    assert kube._next_page({"resourceVersion": "42", "resourceVersionMatch": "NotOlderThan", "x": 1}, "tok") == {
        "x": 1, "continue": "tok"}
