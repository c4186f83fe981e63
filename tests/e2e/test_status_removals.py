"""Status writers remove what is gone, on the real API server (domain/status_patch).

A merge patch keeps every key it does not name with null: the demo once showed a Healthy
service with `lastProbe.error: "status 500"`. The writers run in-process here against the
session's control plane; tests/unit/test_status_writers.py covers each writer on a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from paramedic import kube
from paramedic.domain.probe import ProbeResult, ProbeSpec
from paramedic.domain.timeutil import iso, utcnow
from paramedic.operator.runtime import Runtime
from paramedic.operator.services import ServiceReconciler
from paramedic.settings import Settings

pytestmark = pytest.mark.e2e


def _service(kube_client: kube.KubeClient, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
    kube_client.create(kube.MONITORED_SERVICES, {
        "metadata": {"name": "checkout"},
        "spec": {"target": {"name": "checkout"},
                 # never probed: the test hands the reconciler its results
                 "probe": {"url": "http://127.0.0.1:9/healthz", "intervalSeconds": 10, "timeoutSeconds": 2}}},
        namespace)
    return kube_client.patch(kube.MONITORED_SERVICES, "checkout", {"status": status}, namespace, subresource="status")


def _run(kubeconfig: Path, body: dict[str, Any], step: Callable[[ServiceReconciler], Awaitable[None]]) -> None:
    async def main() -> None:
        client = kube.AsyncKubeClient(kube.Connection.load(str(kubeconfig)))
        rt = Runtime(Settings(), client)
        rt.services.put(body)
        recon = ServiceReconciler(rt)
        try:
            await step(recon)
        finally:
            recon.prober.remove((body["metadata"]["namespace"], "checkout"))
            await client.aclose()
    asyncio.run(main())


def test_a_recovered_service_keeps_no_error_of_its_last_failed_probe(kubeconfig, kube_client, namespace) -> None:
    body = _service(kube_client, namespace, {
        "health": "Down", "consecutiveFailures": 3,
        "lastProbe": {"time": iso(utcnow()), "ok": False, "statusCode": 500, "reason": "Status", "error": "status 500"}})
    spec = ProbeSpec.from_service(body)
    assert spec is not None

    async def recover(recon: ServiceReconciler) -> None:
        for _ in range(spec.success_threshold):
            await recon.on_probe_result((namespace, "checkout"), spec,
                                        ProbeResult(ok=True, time=utcnow(), status_code=200, latency_ms=3))
    _run(kubeconfig, body, recover)
    status = kube_client.get(kube.MONITORED_SERVICES, "checkout", namespace)["status"]
    assert status["health"] == "Healthy"
    assert status["lastProbe"]["ok"] is True and status["lastProbe"]["statusCode"] == 200
    assert "error" not in status["lastProbe"] and "reason" not in status["lastProbe"]


def test_an_ended_maintenance_window_leaves_only_that_it_is_not_active(kubeconfig, kube_client, namespace) -> None:
    body = _service(kube_client, namespace, {"health": "Healthy", "maintenance": {
        "active": True, "until": iso(utcnow()), "reason": "upgrade", "source": "service", "error": "old"}})

    async def reconcile(recon: ServiceReconciler) -> None:
        await recon.reconcile((namespace, "checkout"))
    _run(kubeconfig, body, reconcile)
    status = kube_client.get(kube.MONITORED_SERVICES, "checkout", namespace)["status"]
    assert status["maintenance"] == {"active": False}
