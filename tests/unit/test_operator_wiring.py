"""The operator's parts, built by explicit construction and handed to Kopf's handlers as their memo."""

from __future__ import annotations

import asyncio
import copy

import pytest

from paramedic.operator import handlers
from paramedic.operator.wiring import Memo, Operator
from paramedic.settings import Settings


class _Client:
    closed = False

    async def aclose(self) -> None:
        self.closed = True


def incident(name: str, service: str = "checkout") -> dict:
    return {"metadata": {"name": name, "namespace": "shop", "resourceVersion": "5"},
            "spec": {"service": service, "state": "open", "severity": "high"}}


def test_parts_are_wired_to_each_other():
    op = Operator(Settings(workers=4), _Client())  # type: ignore[arg-type]
    assert op.incidents.queue is op.incident_queue and op.services.incident_queue is op.incident_queue
    assert op.incidents.services is op.services
    assert op.incidents.rt is op.services.rt is op.schedules.rt is op.runtime
    # A finished side effect wakes its incident; fire-and-forget effects (owner None) wake nothing.
    op.runtime.effects.done_callback(("shop", "inc-1"))
    op.runtime.effects.done_callback(None)
    assert op.incident_queue._queued == {("shop", "inc-1")}
    # A probe result that names an incident wakes it.
    op.services._poke_incident("shop", "inc-2")
    assert op.incident_queue._queued == {("shop", "inc-1"), ("shop", "inc-2")}


def test_memo_is_shared_by_kopfs_per_object_copies_and_refuses_before_start():
    memo = Memo()
    with pytest.raises(RuntimeError, match="has not started"):
        memo.require()
    op = Operator(Settings(), _Client())  # type: ignore[arg-type]
    memo.operator = op
    assert copy.copy(memo).require() is op  # Kopf gives each object a shallow copy of the operator's memo


def test_handlers_feed_the_caches_and_queues_through_the_memo():
    async def scenario() -> tuple[Operator, _Client]:
        client = _Client()
        op = Operator(Settings(), client)  # type: ignore[arg-type]
        memo = Memo(op)
        await handlers.incident_event(event={"type": "ADDED", "object": incident("inc-1")}, memo=memo)
        assert op.runtime.incidents.get(("shop", "inc-1")) is not None
        assert op.incident_queue._queued == {("shop", "inc-1")}
        svc = {"metadata": {"name": "checkout", "namespace": "shop", "generation": 1}, "spec": {}}
        await handlers.service_event(event={"type": "ADDED", "object": svc}, memo=memo)
        assert op.service_queue._queued == {("shop", "checkout")}
        sched = {"metadata": {"name": "team", "namespace": "shop"}, "spec": {}}
        await handlers.schedule_event(event={"type": "ADDED", "object": sched}, memo=memo)
        assert op.schedule_queue._queued == {("shop", "team")}
        await handlers.incident_event(event={"type": "DELETED", "object": incident("inc-1")}, memo=memo)
        assert op.runtime.incidents.get(("shop", "inc-1")) is None
        op.start()
        await handlers.cleanup(memo=memo)
        return op, client

    op, client = asyncio.run(scenario())
    assert client.closed


def test_a_service_change_wakes_its_active_incidents_only():
    async def scenario() -> Operator:
        op = Operator(Settings(), _Client())  # type: ignore[arg-type]
        memo = Memo(op)
        op.runtime.incidents.put(incident("inc-open"))
        resolved = incident("inc-done")
        resolved["spec"]["state"] = "resolved"
        op.runtime.incidents.put(resolved)
        op.runtime.incidents.put(incident("inc-other", service="cart"))
        svc = {"metadata": {"name": "checkout", "namespace": "shop", "generation": 1}, "spec": {}}
        await handlers.service_event(event={"type": "ADDED", "object": svc}, memo=memo)
        assert op.incident_queue._queued == {("shop", "inc-open")}
        # Only its status moved (same generation and annotations): nothing to reconcile.
        op.incident_queue._queued.clear()
        await handlers.service_event(event={"type": "MODIFIED", "object": dict(svc, status={"health": "Healthy"})},
                                     memo=memo)
        assert op.incident_queue._queued == set()
        return op

    asyncio.run(scenario())


def test_a_shard_gained_starts_its_probes_at_once_and_queues_its_objects():
    async def scenario() -> None:
        op = Operator(Settings(), _Client())  # type: ignore[arg-type]
        probed = {"metadata": {"name": "checkout", "namespace": "shop", "generation": 1},
                  "spec": {"target": {"name": "checkout"}, "probe": {"url": "http://127.0.0.1:1/healthz"}}}
        quiet = {"metadata": {"name": "cart", "namespace": "shop", "generation": 1}, "spec": {"target": {"name": "cart"}}}
        op.runtime.services.put(probed)
        op.runtime.services.put(quiet)
        op.runtime.incidents.put(incident("inc-open"))
        every = frozenset(range(op.runtime.shards.count))
        op._shards_moved(every, frozenset())
        # Probing does not wait for the reconcile (a few API calls per service, in turn).
        assert ("shop", "checkout") in op.services.prober and ("shop", "cart") not in op.services.prober
        assert op.service_queue._queued == {("shop", "checkout"), ("shop", "cart")}
        assert op.incident_queue._queued == {("shop", "inc-open")}
        # Lost: queued again, and their reconcile finds them another replica's.
        op.service_queue._queued.clear()
        op._shards_moved(frozenset(), every)
        assert op.service_queue._queued == {("shop", "checkout"), ("shop", "cart")}

    asyncio.run(scenario())
