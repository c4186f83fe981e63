"""The seal key's Secret: read, created once when missing, shared by replicas; remediation waits without it."""

from __future__ import annotations

import asyncio
import base64
import copy

import pytest

from paramedic import kube, seal_io
from paramedic.domain.incident_plan import NO_SEAL_KEY
from paramedic.operator.incidents import IncidentReconciler
from paramedic.operator.runtime import Runtime
from paramedic.settings import Settings


class Secrets:
    """Secrets by (namespace, name); create refuses an existing name (409), like the API server."""

    def __init__(self, namespaces: tuple[str, ...] = ("paramedic",), forbidden: bool = False) -> None:
        self.namespaces = namespaces
        self.forbidden = forbidden
        self.items: dict[tuple[str, str], dict] = {}
        self.calls: list[str] = []
        self.before_create = None

    def _check(self, namespace: str) -> None:
        if self.forbidden:
            raise kube.ApiError(403, "secrets is forbidden", "Forbidden")
        if namespace not in self.namespaces:
            raise kube.NotFound(404, f'namespaces "{namespace}" not found')

    async def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        assert res == kube.SECRETS
        self.calls.append("get")
        self._check(namespace or "")
        found = self.items.get((namespace or "", name))
        return copy.deepcopy(found) if found else None

    async def get(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict:
        found = await self.get_or_none(res, name, namespace)
        if found is None:
            raise kube.NotFound(404, "not found")
        return found

    async def create(self, res: kube.Resource, body: dict, namespace: str | None = None) -> dict:
        self.calls.append("create")
        self._check(namespace or "")
        if self.before_create is not None:
            self.before_create()
        key = (namespace or "", body["metadata"]["name"])
        if key in self.items:
            raise kube.Conflict(409, "already exists", "AlreadyExists")
        stored = {**copy.deepcopy(body), "metadata": {**body["metadata"], "namespace": namespace,
                                                       "creationTimestamp": "2026-03-01T12:00:00Z"}}
        self.items[key] = stored
        return copy.deepcopy(stored)


def test_the_key_is_created_once_and_then_read():
    api = Secrets()
    first = asyncio.run(seal_io.load_or_create(api, "paramedic"))  # type: ignore[arg-type]
    assert len(first.key) == 32 and first.since is not None
    stored = api.items[("paramedic", seal_io.SECRET_NAME)]
    assert stored["immutable"] is True and base64.b64decode(stored["data"]["key"]) == first.key
    again = asyncio.run(seal_io.load_or_create(api, "paramedic"))  # type: ignore[arg-type]
    assert again == first and api.calls == ["get", "create", "get"]


def test_two_replicas_creating_it_at_once_share_one_key():
    api = Secrets()
    theirs = {"metadata": {"name": seal_io.SECRET_NAME, "creationTimestamp": "2026-03-01T11:00:00Z"},
              "data": {"key": base64.b64encode(b"t" * 32).decode()}}

    def the_other_replica_wins() -> None:
        api.items[("paramedic", seal_io.SECRET_NAME)] = theirs
    api.before_create = the_other_replica_wins
    got = asyncio.run(seal_io.load_or_create(api, "paramedic"))  # type: ignore[arg-type]
    assert got.key == b"t" * 32


@pytest.mark.parametrize("data, why", [({"key": "not base64!"}, "not base64"),
                                       ({"key": base64.b64encode(b"short").decode()}, "fewer than 32"),
                                       ({}, "fewer than 32")])
def test_a_broken_secret_says_what_to_do(data, why):
    api = Secrets()
    api.items[("paramedic", seal_io.SECRET_NAME)] = {"metadata": {"name": seal_io.SECRET_NAME}, "data": data}
    with pytest.raises(seal_io.SealKeyError) as err:
        asyncio.run(seal_io.load_or_create(api, "paramedic"))  # type: ignore[arg-type]
    assert why in str(err.value) and "delete the Secret" in str(err.value)


def test_the_operator_retries_until_it_has_the_key_then_looks_at_every_incident_again(caplog):
    api = Secrets(namespaces=())
    rt = Runtime(Settings(namespace="paramedic"), api)  # type: ignore[arg-type]
    recon = IncidentReconciler(rt)
    rt.incidents.put({"metadata": {"name": "inc-1", "namespace": "shop", "resourceVersion": "1"}, "spec": {}})
    queued: list = []

    class Queue:
        def add(self, key) -> None:
            queued.append(key)
    recon.queue = Queue()  # type: ignore[assignment]

    async def run() -> None:
        task = asyncio.create_task(recon.load_seal_key(first_delay=0.01, max_delay=0.02))
        await asyncio.sleep(0.05)
        assert recon.plan_settings.seal_key is None and not task.done()
        api.namespaces = ("paramedic",)
        await asyncio.wait_for(task, 2)
    asyncio.run(run())
    assert recon.plan_settings.seal_key is not None and recon.plan_settings.sealed_since is not None
    assert queued == [("shop", "inc-1")]
    assert "does namespace 'paramedic', PARAMEDIC_NAMESPACE, exist?" in caplog.text
    assert NO_SEAL_KEY.startswith("remediation waits for the key")


def test_load_retrying_waits_out_refusals_with_a_doubling_delay_and_says_what_to_fix(caplog) -> None:
    api = Secrets(forbidden=True)
    calls = {"n": 0}
    get = api.get_or_none

    async def counting_get(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            api.forbidden = False
        return await get(*args, **kwargs)
    api.get_or_none = counting_get  # type: ignore[method-assign]
    loaded = asyncio.run(seal_io.load_retrying(api, "paramedic", first_delay=0.01, max_delay=0.02))  # type: ignore[arg-type]
    assert len(loaded.key) >= 32 and calls["n"] == 3
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all("grant the Role paramedic-operator-seal" in e for e in errors)
