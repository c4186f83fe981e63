"""Each Kubernetes call is described once (`kube.Request`, `kube.Plan`); both executors send the same.

The calls are read through an executor that answers with what it is given, so each test
shows the exact request a call makes; `answer` and `watch_event` are the shared reading
of what comes back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from paramedic import kube

NS = "/apis/paramedic.dev/v1alpha1/namespaces/shop"


class Recorder(kube._Calls[Any, Any, Any, Any, Any, Any]):
    """An executor that sends nothing: a single request is returned; a plan is driven over `pages`."""

    def __init__(self, pages: list[Any] | None = None) -> None:
        super().__init__(kube.Connection("https://127.0.0.1:1", False, lambda: None))
        self.pages, self.sent = list(pages or []), []

    def _send(self, req: kube.Request) -> Any:
        return req

    def _drive(self, plan: kube.Plan[Any]) -> Any:
        try:
            req = next(plan)
            while True:
                self.sent.append(req)
                req = plan.send(self.pages.pop(0))
        except StopIteration as done:
            return done.value


def test_single_requests():
    r = Recorder()
    assert r.get(kube.INCIDENTS, "inc-1", "shop") == kube.Request("GET", f"{NS}/incidents/inc-1")
    assert r.get(kube.INCIDENTS, "inc-1", "shop", subresource="status") == \
        kube.Request("GET", f"{NS}/incidents/inc-1/status")
    assert r.get_or_none(kube.NODES, "n 1") == kube.Request("GET", "/api/v1/nodes/n%201", absent_ok=True)
    assert r.delete(kube.PODS, "p", "shop") == \
        kube.Request("DELETE", "/api/v1/namespaces/shop/pods/p", absent_ok=True)
    assert r.get_text(kube.PODS, "p", "shop", "log", {"tailLines": 5, "container": None}) == \
        kube.Request("GET", "/api/v1/namespaces/shop/pods/p/log?tailLines=5", text=True)
    patch = r.patch(kube.INCIDENTS, "inc-1", {"spec": {"state": "acknowledged"}}, "shop", subresource="status")
    assert patch == kube.Request("PATCH", f"{NS}/incidents/inc-1/status", '{"spec": {"state": "acknowledged"}}',
                                 kube.MERGE)
    assert r.patch(kube.DEPLOYMENTS, "web", [], "shop", content_type=kube.JSON_PATCH).content_type == kube.JSON_PATCH
    assert r.replace(kube.INCIDENTS, "inc-1", {"a": 1}, "shop") == \
        kube.Request("PUT", f"{NS}/incidents/inc-1", '{"a": 1}', "application/json")
    raw = r.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {"x": 1})
    assert raw == kube.Request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", '{"x": 1}',
                               "application/json")


def test_create_fills_in_api_version_and_kind_without_changing_the_callers_body():
    body = {"metadata": {"name": "inc-1"}}
    req = Recorder().create(kube.INCIDENTS, body, "shop")
    assert (req.method, req.target, req.content_type) == ("POST", f"{NS}/incidents", "application/json")
    assert json.loads(req.body) == {"metadata": {"name": "inc-1"}, "apiVersion": "paramedic.dev/v1alpha1",
                                    "kind": "Incident"}
    assert body == {"metadata": {"name": "inc-1"}}


def test_list_follows_pages_and_the_floor_unless_cached():
    floor = kube.ReadFloor()
    floor.see({"metadata": {"resourceVersion": "42"}})
    r = Recorder(pages=[{"items": [{"n": 1}], "metadata": {"continue": "tok", "resourceVersion": "50"}},
                        {"items": [{"n": 2}], "metadata": {}}])
    assert r.list(kube.INCIDENTS, "shop", labels={"b": "2", "a": "1"}, field_selector="spec.x=y", floor=floor) == \
        [{"n": 1}, {"n": 2}]
    first, second = (req.target for req in r.sent)
    assert first == f"{NS}/incidents?labelSelector=a%3D1%2Cb%3D2&fieldSelector=spec.x%3Dy&resourceVersion=42" \
                    "&resourceVersionMatch=NotOlderThan"
    # Later pages follow the first one's snapshot: no resourceVersion of their own.
    assert second == f"{NS}/incidents?labelSelector=a%3D1%2Cb%3D2&fieldSelector=spec.x%3Dy&continue=tok"
    assert floor.params()["resourceVersion"] == "50", "the floor learns what a page showed"

    cached = Recorder(pages=[{"items": []}])
    assert cached.list(kube.NAMESPACES, cached=True, floor=floor) == []
    assert cached.sent == [kube.Request("GET", "/api/v1/namespaces?resourceVersion=0")]


def test_list_first_and_served():
    r = Recorder(pages=[{"items": [{"n": 1}]}])
    assert r.list_first(kube.INCIDENTS) == [{"n": 1}]
    assert r.sent == [kube.Request("GET", "/apis/paramedic.dev/v1alpha1/incidents?limit=1")]
    plan = kube.served_plan("paramedic.dev", "v1alpha1")
    assert next(plan) == kube.Request("GET", "/apis/paramedic.dev/v1alpha1", absent_ok=True)
    with pytest.raises(StopIteration) as done:
        plan.send({"resources": [{"name": "incidents"}, {"name": "incidents/status"}, {"name": "oncallschedules"}]})
    assert done.value.value == {"incidents", "oncallschedules"}
    plan = kube.served_plan("", "v1")
    assert next(plan).target == "/api/v1"
    with pytest.raises(StopIteration) as done:
        plan.send(None)  # a 404: the group version is not served
    assert done.value.value is None


def test_answers_are_read_one_way():
    get = kube.Request("GET", f"{NS}/incidents/x")
    assert kube.answer(get, 200, b'{"a": 1}') == {"a": 1}
    assert kube.answer(get, 200, b"") is None
    assert kube.answer(get._replace(text=True), 200, "é".encode()) == "é"
    assert kube.answer(get._replace(absent_ok=True), 404, b"{}") is None
    with pytest.raises(kube.NotFound):
        kube.answer(get, 404, b'{"message": "gone", "reason": "NotFound"}')
    for status, exc in ((409, kube.Conflict), (410, kube.Expired), (422, kube.Invalid), (403, kube.ApiError)):
        with pytest.raises(exc) as caught:
            kube.answer(get, status, b'{"message": "no", "reason": "R"}')
        assert (caught.value.status, caught.value.message, caught.value.reason) == (status, "no", "R")
    with pytest.raises(kube.Unavailable):
        kube.answer(get, 503, b"not json")
    with pytest.raises(kube.Unavailable):
        kube.answer(get, 429, b"{}")
    with pytest.raises(kube.ApiError) as caught:
        kube.answer(get, 401, b"Unauthorized")
    assert caught.value.message == "Unauthorized" and caught.value.body == "Unauthorized"


def test_watch_events():
    assert kube.watch_event(b'{"type": "ADDED", "object": {"a": 1}}') == {"type": "ADDED", "object": {"a": 1}}
    with pytest.raises(kube.Expired):
        kube.watch_event('{"type": "ERROR", "object": {"code": 410, "message": "too old"}}')
    with pytest.raises(kube.ApiError) as caught:
        kube.watch_event('{"type": "ERROR", "object": {"code": 403, "message": "no", "reason": "Forbidden"}}')
    assert caught.value.status == 403 and not isinstance(caught.value, kube.Expired)


def test_both_executors_drive_a_plan_the_same_way():
    """The sync and async executors share every call; only sending differs."""
    pages = [{"items": [1], "metadata": {"continue": "c"}}, {"items": [2]}]

    class Sync(kube.KubeClient):
        def _send(self, req: kube.Request) -> Any:
            sent_sync.append(req)
            return pages[len(sent_sync) - 1]

    class Async(kube.AsyncKubeClient):
        async def _send(self, req: kube.Request) -> Any:
            sent_async.append(req)
            return pages[len(sent_async) - 1]

    conn = kube.Connection("https://127.0.0.1:1", False, lambda: None)
    sent_sync: list[kube.Request] = []
    sent_async: list[kube.Request] = []
    sync = Sync(conn)
    try:
        assert sync.list(kube.INCIDENTS, "shop") == [1, 2]
    finally:
        sync.close()
    assert asyncio.run(Async(conn).list(kube.INCIDENTS, "shop")) == [1, 2]
    assert sent_sync == sent_async and len(sent_sync) == 2
