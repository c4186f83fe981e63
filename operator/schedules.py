"""OnCallSchedule reconciliation: who is on call now, and when that changes."""

from __future__ import annotations

from paramedic import kube
from paramedic.domain import lifecycle, oncall
from paramedic.domain.timeutil import iso, utcnow

from .runtime import Key, Runtime


class ScheduleReconciler:
    def __init__(self, rt: Runtime):
        self.rt = rt

    async def reconcile(self, key: Key) -> float | None:
        body = self.rt.schedules.get(key)
        if body is None:
            return None
        now = utcnow()
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        gen = body["metadata"].get("generation")
        current = oncall.on_call_at(spec, now)
        handoff = oncall.next_handoff(spec, now)
        upcoming = oncall.on_call_at(spec, handoff) if handoff else current
        is_override = oncall.override_at(spec, now) is not None
        conditions = lifecycle.set_condition(status.get("conditions"), "Ready", "True", "OnCallKnown",
                                             f"{current.email} is on call", now=now, generation=gen)
        wanted = {
            "observedGeneration": gen,
            "currentOnCall": {"name": current.name, "email": current.email, "override": is_override},
            "nextOnCall": {"name": upcoming.name, "email": upcoming.email},
            "nextHandoff": iso(handoff) if handoff else None,
            "conditions": conditions,
        }
        if any(status.get(k) != v for k, v in wanted.items()):
            await self.rt.client.patch(kube.ONCALL_SCHEDULES, key[1], {"status": wanted}, key[0], subresource="status")
        if handoff is None:
            return None
        return max(1.0, (handoff - now).total_seconds() + 0.5)
