"""The incident planner: everything the operator decides about one Incident in one pass.

`plan(incident, service, schedule, effects, settings, now) -> Plan` is pure: no I/O, no
Kopf, no clock. It calls one pure function per concern (`paramedic.domain.planning`:
opening and assignment, people's state changes and the resolutions Paramedic decides, SLA
and escalation, the notification outbox, evidence and hints, remediation, retention), each
handed what earlier ones decided as arguments, and merges what they return into one frozen
`Plan`. The operator's executor (`paramedic.operator.incidents`) reads what it needs, calls
`plan`, then does what the Plan says: the guarded spec and status writes, the service's
claim and its release, background side effects (remediation runs, notification sends,
Events) and metrics.

Every decision is in the status written before it is acted on, so a restarted operator
resumes decisions instead of repeating or skipping them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import lifecycle, maintenance
from .planning import clocks, context, opening, outbox
from .planning import remediation as remediation_part
from .planning.base import (
    OPERATOR,
    Announcement,
    Delivery,
    Effects,
    Event,
    Inputs,
    Metric,
    Part,
    PlanSettings,
    team_of,
)
from .planning.opening import STATE_EVENTS
from .planning.remediation import NO_SEAL_KEY, REMEDIATION_ACTOR, RESUMABLE_ACTIONS, claim_counted

__all__ = ["NO_SEAL_KEY", "OPERATOR", "REMEDIATION_ACTOR", "RESUMABLE_ACTIONS", "STATE_EVENTS", "Delivery", "Effects",
           "Event", "Metric", "Plan", "PlanSettings", "claim_counted", "plan", "team_of"]


@dataclass(frozen=True)
class Plan:
    """What one pass decided. The executor writes `spec_patch` and `patch` (status), then acts."""

    status: Mapping[str, Any]
    """The incident's status as it is once `patch` is written."""
    patch: Mapping[str, Any] = field(default_factory=dict)
    spec_patch: Mapping[str, Any] = field(default_factory=dict)
    wake: list[datetime] = field(default_factory=list)
    delete: bool = False
    """Retention: delete the incident (nothing else is done)."""
    events: list[Event] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    acts: bool = False
    """Remediation decided to act on this service: the executor reads the service afresh and
    plans again on it (the cache may not show another incident's claim yet) before claiming."""
    claim: Mapping[str, Any] | None = None
    """Service status.remediation to write, guarded by the service's resourceVersion, before the
    incident's writes (one remediation at a time per service, the hourly cap)."""
    release_claim: bool = False
    """After the write: free the service's claim when this incident holds it, and requeue its
    other active incidents."""
    orphan_holder: str | None = None
    """The service is claimed by this other incident: free the claim if that incident is gone."""
    start_attempt: Mapping[str, Any] | None = None
    """After the write: run this remediation attempt's action in the background."""
    taken_attempts: list[str] = field(default_factory=list)
    """Attempt results recorded by this plan: drop them from memory once the status is written."""
    taken_deliveries: list[tuple[str, str]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    forget: bool = False
    """The incident is over: the service's prober stops counting it as its open incident."""
    announcements: list[Announcement] = field(default_factory=list)
    """Notifications decided in this pass (the outbox records them in `patch`)."""
    gather_evidence: bool = False
    """After the write: gather the target's evidence in the background (it is missing or stale)."""
    taken_evidence: bool = False
    """The gathered evidence is recorded by this plan: drop it from memory once the status is written."""

    def seconds_until_wake(self, now: datetime) -> float | None:
        """When the executor should look again (None: when something changes)."""
        return max(0.0, (min(self.wake) - now).total_seconds()) + 0.05 if self.wake else None


def plan(incident: Mapping[str, Any], service: Mapping[str, Any] | None, schedule: Mapping[str, Any] | None,
         effects: Effects, settings: PlanSettings, now: datetime) -> Plan:
    """Everything to do for `incident` now (see `Plan`): each concern's part in turn, each on the
    status the parts before it leave, then merged."""
    inp = Inputs(incident, service, schedule, effects, settings, now)
    status: dict[str, Any] = dict(inp.incident.status)
    parts: list[Part] = []

    def add(part: Part) -> Part:
        nonlocal status
        parts.append(part)
        status = part.applied(status)
        return part

    # observedState is the operator's own mark: the receiver may have recorded alerts (and
    # createdAt) before this first pass, or may do so after it.
    opened = add(opening.open_incident(inp, status)) if inp.incident.observed_state is None else None
    add(opening.state_changes(inp, status))
    add(opening.assignment(inp, status, str(opened.spec.get("assignee", "")) if opened else ""))
    add(clocks.sla_breaches(inp, status))
    add(clocks.escalation(inp, status))
    add(outbox.record_deliveries(inp, status))
    add(context.evidence(inp, status))
    add(context.seen_before(inp, status))
    add(context.people_entries(inp, status))
    resolved = opening.resolution(inp, status)
    remediated = add(remediation_part.remediate(inp, status, resolving="state" in resolved.spec))
    # A state remediation writes (mitigated) goes first; the resolution follows at the next pass.
    if "state" not in remediated.spec:
        add(resolved)
    delete, kept = clocks.retention(inp, status)
    if delete:
        return Plan(dict(inp.incident.status), delete=True)
    add(kept)
    announcements = [a for p in parts for a in p.announcements]
    if announcements and status.get("maintenance") and maintenance.active_until(service, now) is not None:
        announcements = []  # in maintenance: recorded, no one paged
    add(outbox.queue(inp, status, announcements))
    generation = inp.incident.meta.get("generation")
    if status.get("observedGeneration") != generation:
        add(Part(patch={"observedGeneration": generation}))
    add(outbox.deliver_pending(inp, status))
    return merge(status, parts, announcements)


def merge(status: Mapping[str, Any], parts: Sequence[Part], announcements: Sequence[Announcement]) -> Plan:
    """One Plan from the parts, in order: `status` is the status after all of them."""
    patch: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    spec_by: tuple[str, str] | None = None
    for part in parts:
        patch.update(part.patch)
        spec.update(part.spec)
        spec_by = part.spec_by or spec_by
    spec_patch: dict[str, Any] = {}
    if spec_by is not None:
        spec_patch = lifecycle.spec_patch(spec, *spec_by)
    elif spec:
        spec_patch = {"spec": spec}
    return Plan(
        status=dict(status), patch=patch, spec_patch=spec_patch,
        wake=[w for p in parts for w in p.wake],
        events=[e for p in parts for e in p.events], metrics=[m for p in parts for m in p.metrics],
        acts=any(p.acts for p in parts), claim=_last(p.claim for p in parts),
        release_claim=any(p.release_claim for p in parts), orphan_holder=_last(p.orphan_holder for p in parts),
        start_attempt=_last(p.start_attempt for p in parts),
        taken_attempts=[a for p in parts for a in p.taken_attempts],
        taken_deliveries=[r for p in parts for r in p.taken_deliveries],
        deliveries=[d for p in parts for d in p.deliveries], forget=any(p.forget for p in parts),
        announcements=list(announcements), gather_evidence=any(p.gather_evidence for p in parts),
        taken_evidence=any(p.taken_evidence for p in parts))


def _last(values: Any) -> Any:
    found = None
    for value in values:
        if value is not None:
            found = value
    return found
