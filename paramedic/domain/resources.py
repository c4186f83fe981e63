"""Typed views of Paramedic's custom resources: each field read one way, its default decided once.

A view wraps the body as the API server returns it (Kopf's body, a `kube` GET, a watch
event's object) and never copies or changes it. Sub-objects that may be missing read as
empty mappings, so callers chain attribute reads instead of guarding each level with
`or {}`. Only what more than one module reads is a property; the rest stays reachable
through `spec`, `status` and `meta`. The same helpers (`mapping`, `sequence`, `text`)
read any other Kubernetes object through `Resource`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .timeutil import parse_or_none
from .vocabulary import DEFAULT_SEVERITY, STATES, State

EMPTY: Mapping[str, Any] = {}


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one (a field absent, null or malformed)."""
    return value if isinstance(value, Mapping) else EMPTY


def sequence(value: Any) -> Sequence[Any]:
    """`value` when it is a list, else an empty one."""
    return value if isinstance(value, list) else ()


def text(value: Any, default: str = "") -> str:
    """`value` when it is a non-empty string, else `default`."""
    return value if isinstance(value, str) and value else default


def state_of(value: Any) -> State:
    """An incident state from its spelling; anything unknown or missing is open."""
    return State(value) if value in STATES else State.OPEN


@dataclass(frozen=True, slots=True)
class Resource:
    """What every object has: its body, metadata, spec and status."""

    body: Mapping[str, Any]

    @property
    def meta(self) -> Mapping[str, Any]:
        return mapping(self.body.get("metadata"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return mapping(self.body.get("spec"))

    @property
    def status(self) -> Mapping[str, Any]:
        return mapping(self.body.get("status"))

    @property
    def name(self) -> str:
        return text(self.meta.get("name"))

    @property
    def namespace(self) -> str:
        return text(self.meta.get("namespace"))

    @property
    def uid(self) -> str:
        return text(self.meta.get("uid"))

    @property
    def resource_version(self) -> str:
        return text(self.meta.get("resourceVersion"))

    @property
    def labels(self) -> Mapping[str, str]:
        return mapping(self.meta.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return mapping(self.meta.get("annotations"))

    @property
    def created(self) -> str:
        """`metadata.creationTimestamp` as written (RFC 3339), or ""."""
        return text(self.meta.get("creationTimestamp"))


@dataclass(frozen=True, slots=True)
class Incident(Resource):
    """An Incident (`paramedic.dev/v1`)."""

    @property
    def state(self) -> State:
        """`spec.state`; open when missing."""
        return state_of(self.spec.get("state"))

    @property
    def observed_state(self) -> State | None:
        """`status.observedState`: the state the operator last acted on (None before its first pass)."""
        value = self.status.get("observedState")
        return state_of(value) if value else None

    @property
    def severity(self) -> str:
        return text(self.spec.get("severity"), DEFAULT_SEVERITY)

    @property
    def service(self) -> str:
        """`spec.service`: the MonitoredService's name, or "" for an incident without one."""
        return text(self.spec.get("service"))

    @property
    def source(self) -> str:
        return text(self.spec.get("source"), "manual")

    @property
    def managed(self) -> bool:
        """Whether Paramedic may remediate it (`spec.managed`, default true)."""
        return self.spec.get("managed") is not False

    @property
    def title(self) -> str:
        return text(self.spec.get("title"))

    @property
    def assignee(self) -> str:
        """Who holds it: `spec.assignee` (people's), else `status.assignee` (the on-call)."""
        return text(self.spec.get("assignee")) or text(self.status.get("assignee"))

    @property
    def team(self) -> str:
        return text(self.status.get("team"))

    @property
    def alerts(self) -> Sequence[Mapping[str, Any]]:
        return sequence(self.status.get("alerts"))

    @property
    def remediation(self) -> Mapping[str, Any]:
        return mapping(self.status.get("remediation"))

    @property
    def attempts(self) -> Sequence[Mapping[str, Any]]:
        return sequence(self.remediation.get("attempts"))

    @property
    def timeline(self) -> Sequence[Mapping[str, Any]]:
        return sequence(self.status.get("timeline"))

    @property
    def comments(self) -> Sequence[Mapping[str, Any]]:
        return sequence(self.spec.get("comments"))

    @property
    def runbook_steps(self) -> Sequence[Mapping[str, Any]]:
        """`spec.runbookSteps`: the runbook steps people marked applied."""
        return sequence(self.spec.get("runbookSteps"))

    @property
    def rca(self) -> Mapping[str, Any]:
        """`spec.rca`: the root cause analysis people write."""
        return mapping(self.spec.get("rca"))

    @property
    def sla(self) -> Mapping[str, Any]:
        """`status.sla`: deadlines and breaches."""
        return mapping(self.status.get("sla"))

    @property
    def hints(self) -> Sequence[Mapping[str, Any]]:
        """`status.hints`: probable causes, most probable first."""
        return sequence(self.status.get("hints"))

    @property
    def created_at(self) -> datetime | None:
        """When it opened: `status.createdAt`, else `metadata.creationTimestamp` (before the
        operator saw it); None when neither reads as a time."""
        return parse_or_none(self.status.get("createdAt")) or parse_or_none(self.meta.get("creationTimestamp"))

    @property
    def escalation_level(self) -> int:
        value = self.status.get("escalationLevel")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def active(self) -> bool:
        """Before resolved."""
        return self.state not in (State.RESOLVED, State.CLOSED)


@dataclass(frozen=True, slots=True)
class Service(Resource):
    """A MonitoredService (`paramedic.dev/v1`)."""

    @property
    def target(self) -> Mapping[str, Any]:
        return mapping(self.spec.get("target"))

    @property
    def target_kind(self) -> str:
        """`spec.target.kind`; Deployment when missing (the CRD's default)."""
        return text(self.target.get("kind"), "Deployment")

    @property
    def target_name(self) -> str:
        return text(self.target.get("name"))

    @property
    def probe(self) -> Mapping[str, Any]:
        return mapping(self.spec.get("probe"))

    @property
    def remediation(self) -> Mapping[str, Any]:
        """`spec.remediation`: the policy (actions, cooldown, caps, switches)."""
        return mapping(self.spec.get("remediation"))

    @property
    def remediation_status(self) -> Mapping[str, Any]:
        """`status.remediation`: the claim (which incident remediates now) and the hourly count."""
        return mapping(self.status.get("remediation"))

    @property
    def notify(self) -> Mapping[str, Any]:
        return mapping(self.spec.get("notify"))

    @property
    def team(self) -> str:
        return text(self.spec.get("team"))

    @property
    def severity(self) -> str:
        return text(self.spec.get("severity"), DEFAULT_SEVERITY)

    @property
    def auto_resolve(self) -> bool:
        return self.spec.get("autoResolve") is not False

    @property
    def health(self) -> str:
        """`status.health` (Healthy, Degraded, Down) or Unknown before the first probe."""
        return text(self.status.get("health"), "Unknown")

    @property
    def runbook(self) -> Mapping[str, Any]:
        """`spec.runbook` (its `steps`)."""
        return mapping(self.spec.get("runbook"))

    @property
    def maintenance(self) -> Mapping[str, Any]:
        """`status.maintenance`: the window the operator last found active (`active`, `until`)."""
        return mapping(self.status.get("maintenance"))

    @property
    def open_incident(self) -> str:
        return text(self.status.get("openIncident"))

    @property
    def last_probe(self) -> Mapping[str, Any]:
        return mapping(self.status.get("lastProbe"))


@dataclass(frozen=True, slots=True)
class Schedule(Resource):
    """An OnCallSchedule (`paramedic.dev/v1`)."""

    @property
    def escalation(self) -> Sequence[Mapping[str, Any]]:
        return sequence(self.spec.get("escalation"))
