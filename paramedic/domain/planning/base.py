"""What the planner's parts share: their inputs, what each returns, and the builder it fills."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import lifecycle
from .. import notify_render as nr
from ..resources import Incident, Service, sequence, text

OPERATOR = "paramedic/operator"


@dataclass(frozen=True)
class PlanSettings:
    """The settings the planner reads (from `paramedic.settings.Settings`)."""

    timeline_limit: int = 200
    retention_days: int = 90
    remediation_enabled: bool = True
    admin_emails: tuple[str, ...] = ()
    dashboard_url: str = ""
    console_url: str = ""
    smtp_configured: bool = False
    slack_configured: bool = False
    """A Slack URL in the global settings (a service may add its own), as read for this pass."""
    webhook_configured: bool = False
    """A generic webhook URL in the global settings (a service may add its own), as read for this pass."""
    evidence_enabled: bool = True
    evidence_refresh_seconds: int = 60
    """How often an active incident's evidence is gathered again (the bound on its API cost)."""
    evidence_wait_seconds: int = 10
    """How long the "opened" notification waits for the first evidence, so it carries probable causes."""
    seal_key: bytes | None = None
    """The key sealing remediation attempts (`paramedic.domain.seal`); None until the operator has
    loaded it, and meanwhile remediation waits (nothing is started, resumed or verified)."""
    sealed_since: datetime | None = None
    """When sealing began (the key's creation): an incident created before it may hold unsealed
    attempts from before, kept as history (never resumed)."""


@dataclass(frozen=True)
class Effects:
    """What the executor knows of side effects in flight or finished, in this process.

    - `running`: ids of remediation attempts whose action is running now.
    - `attempt_results`: attempt id -> the fields the action returned, or the exception it raised.
    - `deliveries`: (notification key, channel) -> the delivery round's results, or its exception.
    - `probe`: (health, time of the last probe) of the incident's service, as the prober knows it.
    - `evidence` / `evidence_running`: the last gathering of evidence about the target, or that one runs.
    """

    running: frozenset[str] = frozenset()
    attempt_results: Mapping[str, Mapping[str, Any] | BaseException] = field(default_factory=dict)
    deliveries: Mapping[tuple[str, str], Sequence[nr.DeliveryResult] | BaseException] = field(default_factory=dict)
    probe: tuple[str, str] | None = None
    evidence: Mapping[str, Any] | BaseException | None = None
    """A finished gathering of the incident's evidence (`paramedic.domain.evidence.build`), or its error."""
    evidence_running: bool = False
    earlier: Sequence[Mapping[str, Any]] = ()
    """Other incidents of the same service that the executor knows (for `status.seenBefore`)."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the incident; `id` keeps it to one per occurrence."""

    id: str
    reason: str
    note: str
    type: str = "Normal"


@dataclass(frozen=True)
class Metric:
    """A metric observation: `name` is a counter (inc) or a histogram (observe `value`)."""

    name: str
    labels: tuple[str, ...]
    value: float = 1.0


@dataclass(frozen=True)
class Delivery:
    """A notification to send after the status is written: `channels` None means all."""

    key: str
    channel: str
    notification: nr.Notification
    channels: frozenset[str] | None
    slack_url: str
    webhook_url: str


@dataclass(frozen=True)
class Announcement:
    """A notification decided in this pass, before the outbox records it."""

    key: str
    event: str
    detail: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Inputs:
    """What one pass reads: the incident, its service and schedule, side effects, settings, the time.
    Never modified; `body`/`service_body` are the objects as the API server returned them."""

    body: Mapping[str, Any]
    service_body: Mapping[str, Any] | None
    schedule: Mapping[str, Any] | None
    effects: Effects
    settings: PlanSettings
    now: datetime

    @property
    def incident(self) -> Incident:
        return Incident(self.body)

    @property
    def service(self) -> Service | None:
        return Service(self.service_body) if self.service_body is not None else None

    @property
    def name(self) -> str:
        return self.incident.name

    @property
    def team(self) -> str:
        return team_of(self.body, self.service_body)

    @property
    def spec_assignee(self) -> str:
        return text(self.incident.spec.get("assignee"))

    def service_notify(self) -> Mapping[str, Any]:
        svc = self.service
        return svc.notify if svc is not None else {}

    def admins(self) -> list[str]:
        return list(self.settings.admin_emails) + list(sequence(self.service_notify().get("admins")))

    def recipients(self, event: str, assignee: str) -> list[str]:
        return nr.recipients_for(event, assignee, sequence(self.service_notify().get("admins")),
                                 self.settings.admin_emails)

    def viewed(self, status: Mapping[str, Any]) -> dict[str, Any]:
        """The incident body with `status` in place of its own (for the domain functions over bodies)."""
        return {**self.body, "status": status}


def team_of(incident: Mapping[str, Any], service: Mapping[str, Any] | None) -> str:
    """The owning team: the service's, else the one recorded when the incident opened."""
    own = Service(service).team if service is not None else ""
    return own or Incident(incident).team


@dataclass(frozen=True)
class Part:
    """What one concern decided. `patch` holds the status fields it set, each whole as it left
    them (so applying parts in order gives the status after all of them); the rest is for
    the executor and is merged into the `Plan`."""

    patch: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    metrics: tuple[Metric, ...] = ()
    wake: tuple[datetime, ...] = ()
    announcements: tuple[Announcement, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    """Spec fields to write (an assignment, a state)."""
    spec_by: tuple[str, str] | None = None
    """(actor, reason) of a state change in `spec`: written in the actor annotations."""
    forget: bool = False
    acts: bool = False
    claim: Mapping[str, Any] | None = None
    release_claim: bool = False
    orphan_holder: str | None = None
    start_attempt: Mapping[str, Any] | None = None
    taken_attempts: tuple[str, ...] = ()
    taken_deliveries: tuple[tuple[str, str], ...] = ()
    deliveries: tuple[Delivery, ...] = ()
    gather_evidence: bool = False
    taken_evidence: bool = False

    def applied(self, status: Mapping[str, Any]) -> dict[str, Any]:
        """`status` once this part's fields are written."""
        return {**status, **self.patch}


NOTHING = Part()


class Draft:
    """The builder one part fills while it decides: created and finished within one call, never shared."""

    def __init__(self, status: Mapping[str, Any], now: datetime, limit: int) -> None:
        self.status: dict[str, Any] = dict(status)
        self.patch: dict[str, Any] = {}
        self.now, self.limit = now, limit
        self.events: list[Event] = []
        self.metrics: list[Metric] = []
        self.wake: list[datetime] = []
        self.announcements: list[Announcement] = []
        self.executor: dict[str, Any] = {}
        """`Part`'s fields for the executor, as decided so far (`part` adds its own arguments)."""

    def set(self, **fields: Any) -> None:
        self.status.update(fields)
        self.patch.update(fields)

    def log(self, type_: str, message: str, actor: str = OPERATOR, at: datetime | None = None) -> None:
        entry = lifecycle.timeline_entry(at or self.now, type_, actor, message)
        self.set(timeline=lifecycle.append_timeline(self.status.get("timeline"), entry, self.limit))

    def announce(self, key: str, event: str, detail: str, recipients: Sequence[str]) -> None:
        self.announcements.append(Announcement(key, event, detail, tuple(recipients)))

    def wake_at(self, when: datetime | None) -> None:
        if when is not None:
            self.wake.append(when)

    def count(self, name: str, *labels: str, value: float = 1.0) -> None:
        self.metrics.append(Metric(name, tuple(str(label) for label in labels), value))

    def part(self, **executor: Any) -> Part:
        """The finished part; `executor` names `Part`'s other fields."""
        return Part(patch=dict(self.patch), events=tuple(self.events), metrics=tuple(self.metrics),
                    wake=tuple(self.wake), announcements=tuple(self.announcements),
                    **{**self.executor, **executor})
