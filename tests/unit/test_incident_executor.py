"""The incident executor against a fake API client: the writes and side effects a Plan asks for."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from datetime import timedelta
from typing import Any

from paramedic import kube
from paramedic.domain.timeutil import iso, utcnow
from paramedic.operator.incidents import IncidentApi, IncidentReconciler
from paramedic.operator.runtime import Runtime
from paramedic.settings import Settings


class FakeClient:
    """Objects by (plural, namespace, name); merge patches; 409 on a stale resourceVersion."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self._rv = 100

    def add(self, res: kube.Resource, body: dict) -> dict:
        self._rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[(res.plural, body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    async def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        self.calls.append(("get", f"{res.plural}/{name}", None))
        body = self.objects.get((res.plural, namespace or "", name))
        return copy.deepcopy(body) if body is not None else None

    async def patch(self, res: kube.Resource, name: str, patch: dict, namespace: str | None = None,
                    subresource: str | None = None, **_: Any) -> dict:
        self.calls.append(("patch", f"{res.plural}/{name}", subresource))
        body = self.objects.get((res.plural, namespace or "", name))
        if body is None:
            raise kube.NotFound(404, "not found")
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != body["metadata"]["resourceVersion"]:
            raise kube.Conflict(409, "conflict")
        _merge(body, {k: v for k, v in patch.items() if k != "metadata"})
        _merge(body["metadata"], {k: v for k, v in (patch.get("metadata") or {}).items() if k != "resourceVersion"})
        if "spec" in patch:
            body["metadata"]["generation"] = body["metadata"].get("generation", 1) + 1
        self._rv += 1
        body["metadata"]["resourceVersion"] = str(self._rv)
        return copy.deepcopy(body)

    async def delete(self, res: kube.Resource, name: str, namespace: str | None = None) -> None:
        self.calls.append(("delete", f"{res.plural}/{name}", None))
        self.objects.pop((res.plural, namespace or "", name), None)

    async def create(self, res: kube.Resource, body: dict, namespace: str | None = None) -> dict:
        self.calls.append(("create", res.plural, None))
        return body


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def setup(**settings: Any) -> tuple[FakeClient, Runtime, IncidentReconciler]:
    client = FakeClient()
    api: IncidentApi = client  # the executor's own calls: the Protocol AsyncKubeClient also implements
    # The runtime's side effects (remediation runs, evidence, Events) take the full client; here the
    # fake's get_or_none/patch/create serve the few calls they make.
    rt = Runtime(Settings(**settings), client)  # type: ignore[arg-type]
    recon = IncidentReconciler(rt, client=api)
    # The seal key, as load_seal_key sets it once read from its Secret (tests/unit/test_seal_key.py).
    recon.plan_settings = dataclasses.replace(recon.plan_settings, seal_key=b"k" * 32)
    now = utcnow()
    svc = client.add(kube.MONITORED_SERVICES, {
        "metadata": {"name": "checkout", "namespace": "shop", "generation": 1},
        "spec": {"team": "shop", "target": {"kind": "Deployment", "name": "checkout"},
                 "remediation": {"actions": [{"restart": {}}]}},
        "status": {"remediation": {"recent": []}}})
    rt.services.put(svc)
    schedule = client.add(kube.ONCALL_SCHEDULES, {
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"participants": [{"name": "Alice", "email": "alice@example.com"}],
                 "rotation": {"start": iso(now - timedelta(days=1)), "lengthHours": 24}}})
    rt.schedules.put(schedule)
    inc = client.add(kube.INCIDENTS, {
        "metadata": {"name": "checkout-abc", "namespace": "shop", "uid": "u1", "generation": 1,
                     "creationTimestamp": iso(now)},
        "spec": {"service": "checkout", "severity": "high", "title": "down", "state": "open",
                 "source": "manual", "managed": True}})
    rt.incidents.put(inc)
    return client, rt, recon


def test_opening_assigns_claims_and_starts_the_restart_after_the_writes() -> None:
    async def run() -> None:
        client, rt, recon = setup()
        await recon.reconcile(("shop", "checkout-abc"))
        writes = [c for c in client.calls if c[0] == "patch"]
        # the claim on the stored service first, then the assignment, then the status
        assert writes == [("patch", "monitoredservices/checkout", "status"), ("patch", "incidents/checkout-abc", None),
                          ("patch", "incidents/checkout-abc", "status")]
        assert ("get", "monitoredservices/checkout", None) in client.calls  # re-read before claiming
        stored = client.objects[("incidents", "shop", "checkout-abc")]
        assert stored["spec"]["assignee"] == "alice@example.com"
        assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]
        attempt = stored["status"]["remediation"]["attempts"][0]
        assert attempt["result"] == "Running"
        assert client.objects[("monitoredservices", "shop", "checkout")]["status"]["remediation"]["inFlight"] \
            == "checkout-abc"
        assert rt.effects.running(f"remediate:u1:{attempt['id']}")
        await asyncio.sleep(0.1)  # the restart finds no Deployment: a Failed result waits to be recorded
        assert rt.effects.peek(f"remediate:u1:{attempt['id']}")["result"] == "Failed"
        # the next pass records it, drops it from memory and frees the service
        await recon.reconcile(("shop", "checkout-abc"))
        stored = client.objects[("incidents", "shop", "checkout-abc")]
        assert stored["status"]["remediation"]["attempts"][0]["result"] == "Failed"
        assert stored["status"]["remediation"]["phase"] == "Failed"
        assert not rt.effects.has_result(f"remediate:u1:{attempt['id']}")
        await asyncio.sleep(0.1)
        assert "inFlight" not in client.objects[("monitoredservices", "shop", "checkout")]["status"]["remediation"]
        await rt.effects.stop()

    asyncio.run(run())


def test_a_stale_incident_is_decided_again_without_acting() -> None:
    async def run() -> None:
        client, rt, recon = setup(remediation_enabled=False)
        stale = copy.deepcopy(rt.incidents.get(("shop", "checkout-abc")))
        await client.patch(kube.INCIDENTS, "checkout-abc", {"status": {"createdAt": iso(utcnow())}}, "shop",
                           subresource="status")
        assert await recon.reconcile(("shop", "checkout-abc")) == 0.0  # conflict: again at once
        assert rt.incidents.get(("shop", "checkout-abc"))["metadata"]["resourceVersion"] \
            != stale["metadata"]["resourceVersion"]
        await rt.effects.stop()

    asyncio.run(run())


def test_notification_channels_are_read_at_each_pass(tmp_path) -> None:
    """A Slack URL added to the mounted Secret while the operator runs counts from the next pass:
    before it, nothing could send (recorded skipped at once); after it, the announcement is pending."""
    async def run() -> None:
        slack = tmp_path / "slack"
        client, rt, recon = setup(remediation_enabled=False, evidence_enabled=False,
                                  slack_webhook_url_file=str(slack))
        key = ("shop", "checkout-abc")
        await recon.reconcile(key)
        stored = client.objects[("incidents", "shop", "checkout-abc")]
        assert [(e["key"], e["channel"], e["result"]) for e in stored["status"]["notifications"]] \
            == [("opened", "email", "skipped")]
        # Loopback only, and refused before any connection (netguard refuses hooks to private addresses).
        slack.write_text("http://127.0.0.1:9/hook")
        rt.incidents.put(await client.patch(kube.INCIDENTS, "checkout-abc", {"spec": {"state": "resolved"}}, "shop"))
        await recon.reconcile(key)
        stored = client.objects[("incidents", "shop", "checkout-abc")]
        resolved = [e for e in stored["status"]["notifications"] if e["key"] == "resolved"]
        assert [(e["channel"], e["result"]) for e in resolved] == [("pending", "pending")]
        await rt.effects.stop()

    asyncio.run(run())
