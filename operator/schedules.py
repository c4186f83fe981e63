"""OnCallSchedule reconciliation: who is on call now, and when that changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paramedic import kube
from paramedic.domain import lifecycle, oncall, status_patch
from paramedic.domain.resources import Schedule
from paramedic.domain.timeutil import iso, utcnow

from .runtime import Key, Runtime


def wanted_status(schedule: Schedule, now: datetime) -> tuple[dict[str, Any], datetime | None]:
    """The schedule's whole status at `now`, and the next hand-off (None: there is none)."""
    spec = schedule.spec
    gen = schedule.meta.get("generation")
    shift = oncall.shift_at(spec, now)
    current, handoff, upcoming = shift.now, shift.handoff, shift.next or shift.now
    conditions = lifecycle.set_condition(list(schedule.status.get("conditions") or []), "Ready", "True", "OnCallKnown",
                                         f"{current.email} is on call", now=now, generation=gen)
    return {
        "observedGeneration": gen,
        "currentOnCall": {"name": current.name, "email": current.email, "override": shift.override},
        "nextOnCall": {"name": upcoming.name, "email": upcoming.email},
        "nextHandoff": iso(handoff) if handoff else None,
        "conditions": conditions,
    }, handoff


class ScheduleReconciler:
    def __init__(self, rt: Runtime):
        self.rt = rt

    async def reconcile(self, key: Key) -> float | None:
        body = self.rt.schedules.get(key)
        if body is None or not self.rt.owns_schedule(key):
            return None
        now = utcnow()
        schedule = Schedule(body)
        wanted, handoff = wanted_status(schedule, now)
        # Each key it writes is replaced whole: what it no longer states within one is removed
        # (`status.kopf` is Kopf's, left alone).
        patch = status_patch.set_keys(schedule.status, wanted)
        if status_patch.changes(schedule.status, patch):
            await self.rt.client.patch(kube.ONCALL_SCHEDULES, key[1], {"status": patch}, key[0], subresource="status")
        if handoff is None:
            return None
        return max(1.0, (handoff - now).total_seconds() + 0.5)
