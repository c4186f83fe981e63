"""Every status writer removes what is gone (domain/status_patch), against a fake API client.

The fake applies merge patches as the API server does (RFC 7396): a key the writer does not
name with null stays. tests/e2e/test_status_removals.py shows the same on a real API server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from paramedic import kube
from paramedic.domain.probe import ProbeResult, ProbeSpec
from paramedic.domain.timeutil import iso, utcnow
from paramedic.operator.runtime import Runtime
from paramedic.operator.schedules import ScheduleReconciler
from paramedic.operator.services import ServiceReconciler
from paramedic.settings import Settings

from .test_incident_executor import FakeClient, setup


def _stored(client: FakeClient, res: kube.Resource, name: str, ns: str = "shop") -> dict:
    return client.objects[(res.plural, ns, name)]


def test_the_schedule_writer_removes_a_key_gone_from_who_is_on_call() -> None:
    async def run() -> None:
        client = FakeClient()
        now = utcnow()
        body = client.add(kube.ONCALL_SCHEDULES, {
            "metadata": {"name": "shop", "namespace": "shop", "generation": 1},
            "spec": {"participants": [{"name": "Alice", "email": "alice@example.com"}],
                     "rotation": {"start": iso(now - timedelta(days=1)), "lengthHours": 24}},
            "status": {"currentOnCall": {"name": "Bob", "email": "bob@example.com", "phone": "+1"},
                       "kopf": {"progress": {}}}})
        rt = Runtime(Settings(), client)  # type: ignore[arg-type]
        rt.schedules.put(body)
        await ScheduleReconciler(rt).reconcile(("shop", "shop"))
        status = _stored(client, kube.ONCALL_SCHEDULES, "shop")["status"]
        assert status["currentOnCall"] == {"name": "Alice", "email": "alice@example.com", "override": False}
        assert status["kopf"] == {"progress": {}}  # Kopf's, not the reconciler's

    asyncio.run(run())


def _service(client: FakeClient, status: dict) -> tuple[Runtime, dict]:
    body = client.add(kube.MONITORED_SERVICES, {
        "metadata": {"name": "checkout", "namespace": "shop", "generation": 1},
        "spec": {"target": {"kind": "Deployment", "name": "checkout"},
                 "probe": {"url": "http://127.0.0.1:9/healthz", "intervalSeconds": 10}},
        "status": status})
    rt = Runtime(Settings(), client)  # type: ignore[arg-type]
    rt.services.put(body)
    return rt, body


def test_the_service_writer_removes_what_the_maintenance_window_no_longer_states() -> None:
    async def run() -> None:
        client = FakeClient()
        rt, _ = _service(client, {"health": "Healthy", "maintenance": {
            "active": True, "until": iso(utcnow()), "reason": "upgrade", "source": "service", "stale": "x"}})
        recon = ServiceReconciler(rt)
        await recon.reconcile(("shop", "checkout"))
        recon.prober.remove(("shop", "checkout"))
        assert _stored(client, kube.MONITORED_SERVICES, "checkout")["status"]["maintenance"] == {"active": False}

    asyncio.run(run())


def test_the_prober_writer_removes_what_the_last_probe_no_longer_states() -> None:
    async def run() -> None:
        client = FakeClient()
        rt, body = _service(client, {"health": "Healthy", "consecutiveSuccesses": 3,
                                     "lastProbe": {"time": iso(utcnow()), "ok": False, "statusCode": 500,
                                                   "error": "status 500", "stale": "x"}})
        recon = ServiceReconciler(rt)
        spec = ProbeSpec.from_service(body)
        assert spec is not None
        # A health change is written at once: Healthy -> (3 failures) is not, so go Unknown -> Healthy.
        rt.services.put({**body, "status": {**body["status"], "health": "Unknown", "consecutiveSuccesses": 0}})
        for _ in range(spec.success_threshold):
            await recon.on_probe_result(("shop", "checkout"), spec, ProbeResult(ok=True, time=utcnow(), status_code=200,
                                                                               latency_ms=3))
        last = _stored(client, kube.MONITORED_SERVICES, "checkout")["status"]["lastProbe"]
        assert last["ok"] is True and "error" not in last and "stale" not in last

    asyncio.run(run())


def test_the_claim_replaces_the_services_remediation_status_whole() -> None:
    async def run() -> None:
        client, rt, recon = setup()
        svc = _stored(client, kube.MONITORED_SERVICES, "checkout")
        svc["status"]["remediation"] = {"recent": [], "stale": "from an older claim"}
        rt.services.put(svc)
        await recon.reconcile(("shop", "checkout-abc"))
        remediation = _stored(client, kube.MONITORED_SERVICES, "checkout")["status"]["remediation"]
        assert remediation["inFlight"] == "checkout-abc"
        assert "stale" not in remediation
        await rt.effects.stop()

    asyncio.run(run())
