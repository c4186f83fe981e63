"""The incident planner: everything the operator decides about one Incident in one pass.

`plan(incident, service, schedule, effects, settings, now) -> Plan` is pure: no I/O, no
Kopf, no clock. It covers opening, assignment, people's state changes, SLA clocks,
escalation, the notification outbox, retention and the remediation state machine (the
policy's next step comes from `remediation.decide`). The operator's executor
(`paramedic.operator.incidents`) reads what it needs, calls `plan`, then does what the
Plan says: the guarded spec and status writes, the service's claim and its release,
background side effects (remediation runs, notification sends, Events) and metrics.

Every decision is in the status written before it is acted on, so a restarted operator
resumes decisions instead of repeating or skipping them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import evidence as evidence_mod
from . import hints as hints_mod
from . import history, lifecycle, maintenance, oncall, remediation, seal, sla
from . import notify_render as nr
from .remediation import Kind
from .timeutil import iso, iso_ms, parse_or_none
from .vocabulary import DEFAULT_SEVERITY, IN_PROGRESS_RESULTS, AttemptResult, State, SuggestedAction

OPERATOR = "paramedic/operator"
REMEDIATION_ACTOR = "paramedic/remediation"
STATE_EVENTS = {State.RESOLVED: "resolved", State.CLOSED: "closed"}
"""States whose reaching is announced, and the notification event for each."""
CREATOR_GRACE_SECONDS = 3.0
RESUMABLE_ACTIONS = ("restart", "rollback", "scale")
"""Idempotent actions (keyed by restartedAt / the attempt id / replica count): an operator that lost
one finishes it."""


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
    """A Slack URL in the global settings (a service may add its own)."""
    webhook_configured: bool = False
    """A generic webhook URL in the global settings (a service may add its own)."""
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


@dataclass
class Plan:
    """What one pass decided. The executor writes `spec_patch` and `patch` (status), then acts."""

    status: dict[str, Any]
    """The incident's status as it is once `patch` is written."""
    limit: int = 200
    patch: dict[str, Any] = field(default_factory=dict)
    spec_patch: dict[str, Any] = field(default_factory=dict)
    wake: list[datetime] = field(default_factory=list)
    delete: bool = False
    """Retention: delete the incident (nothing else is done)."""
    events: list[Event] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    acts: bool = False
    """Remediation decided to act on this service: the executor reads the service afresh and
    plans again on it (the cache may not show another incident's claim yet) before claiming."""
    claim: dict[str, Any] | None = None
    """Service status.remediation to write, guarded by the service's resourceVersion, before the
    incident's writes (one remediation at a time per service, the hourly cap)."""
    release_claim: bool = False
    """After the write: free the service's claim when this incident holds it, and requeue its
    other active incidents."""
    orphan_holder: str | None = None
    """The service is claimed by this other incident: free the claim if that incident is gone."""
    start_attempt: dict[str, Any] | None = None
    """After the write: run this remediation attempt's action in the background."""
    taken_attempts: list[str] = field(default_factory=list)
    """Attempt results recorded by this plan: drop them from memory once the status is written."""
    taken_deliveries: list[tuple[str, str]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    forget: bool = False
    """The incident is over: the service's prober stops counting it as its open incident."""
    announcements: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    """(key, event, detail, recipients) of notifications decided in this pass."""
    gather_evidence: bool = False
    """After the write: gather the target's evidence in the background (it is missing or stale)."""
    taken_evidence: bool = False
    """The gathered evidence is recorded by this plan: drop it from memory once the status is written."""

    def set(self, **fields: Any) -> None:
        self.status.update(fields)
        self.patch.update(fields)

    def log(self, now: datetime, type_: str, message: str, actor: str = OPERATOR) -> None:
        entry = lifecycle.timeline_entry(now, type_, actor, message)
        self.set(timeline=lifecycle.append_timeline(self.status.get("timeline"), entry, self.limit))

    def announce(self, key: str, event: str, detail: str, recipients: list[str]) -> None:
        self.announcements.append((key, event, detail, recipients))

    def wake_at(self, when: datetime | None) -> None:
        if when is not None:
            self.wake.append(when)

    def count(self, name: str, *labels: str, value: float = 1.0) -> None:
        self.metrics.append(Metric(name, tuple(str(label) for label in labels), value))

    def seconds_until_wake(self, now: datetime) -> float | None:
        """When the executor should look again (None: when something changes)."""
        return max(0.0, (min(self.wake) - now).total_seconds()) + 0.05 if self.wake else None


NO_SEAL_KEY = ("remediation waits for the key that seals its attempts (the operator keeps it in a Secret "
               "in Paramedic's namespace; its log says why it is not loaded)")


def _attempt_line(attempt: Mapping[str, Any], position: int) -> str:
    index = attempt.get("index")
    number = (index if isinstance(index, int) and not isinstance(index, bool) else position) + 1
    return (f"attempt {number} ({attempt.get('result') or 'no result'}, "
            f"{attempt.get('detail') or attempt.get('action') or 'no action'}, id {attempt.get('id') or '-'})")


def claim_counted(svc_status: Mapping[str, Any], name: str, recent: Sequence[str],
                  earlier: Sequence[Mapping[str, Any]]) -> bool:
    """Whether this attempt's claim is already in the service's hourly count: a claim repeated
    after a failed status write or a crash. The service still naming this incident is not
    enough: the release of its previous attempt may not have landed yet, and that attempt's
    claim is not this one's (counting it once would let the hourly cap be overrun)."""
    if svc_status.get("inFlight") != name:
        return False
    if not earlier:
        return bool(recent)
    since = parse_or_none(earlier[-1].get("startedAt"))
    return since is None or any((t := parse_or_none(r)) is not None and t > since for r in recent)


def team_of(incident: Mapping[str, Any], service: Mapping[str, Any] | None) -> str:
    """The owning team: the service's, else the one recorded when the incident opened."""
    return str(((service or {}).get("spec") or {}).get("team", "") or (incident.get("status") or {}).get("team", "")
               or "")


def awaiting_creator(inc: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds to leave a just-created incident alone while its creator writes its status.

    The receiver creates an incident, then records its alerts in a second request
    (status is a subresource); deciding in between would only conflict with that
    write. Its watch event brings the incident back; the grace is the fallback for a
    receiver that died in between."""
    if inc.get("status") or inc["spec"].get("source") not in ("alertmanager", "grafana", "api"):
        return None
    created = parse_or_none(inc["metadata"].get("creationTimestamp"))
    if created is None:
        return None
    left = CREATOR_GRACE_SECONDS - (now - created).total_seconds()
    return left if left > 0 else None


def plan(incident: Mapping[str, Any], service: Mapping[str, Any] | None, schedule: Mapping[str, Any] | None,
         effects: Effects, settings: PlanSettings, now: datetime) -> Plan:
    """Everything to do for `incident` now (see `Plan`)."""
    return _Planner(incident, service, schedule, effects, settings, now).run()


class _Planner:
    def __init__(self, inc: Mapping[str, Any], svc: Mapping[str, Any] | None, schedule: Mapping[str, Any] | None,
                 effects: Effects, settings: PlanSettings, now: datetime) -> None:
        self.inc, self.svc, self.schedule = inc, svc, schedule
        self.effects, self.settings, self.now = effects, settings, now
        self.spec: Mapping[str, Any] = inc.get("spec") or {}
        self.meta: Mapping[str, Any] = inc.get("metadata") or {}
        self.name = str(self.meta.get("name", ""))
        self.team = team_of(inc, svc)
        self.plan = Plan(dict(inc.get("status") or {}), settings.timeline_limit)

    def run(self) -> Plan:
        plan = self.plan
        # observedState is the operator's own mark; creators (the webhook) may have
        # written createdAt and alerts already.
        if not plan.status.get("observedState"):
            self._open()
        self._state_changes()
        self._assignment()
        self._sla()
        self._escalation()
        self._record_deliveries()
        self._evidence()
        self._seen_before()
        self._people_entries()
        self._remediation()
        if self._retention_due():
            return Plan(dict(self.inc.get("status") or {}), plan.limit, delete=True)
        if plan.announcements and plan.status.get("maintenance") \
                and maintenance.active_until(self.svc, self.now) is not None:
            plan.announcements.clear()  # in maintenance: recorded, no one paged
        if plan.announcements:
            self._queue_notifications()
        gen = self.meta.get("generation")
        if plan.status.get("observedGeneration") != gen:
            plan.set(observedGeneration=gen)
        self._deliver_pending()
        return plan

    # --- who is told ------------------------------------------------------------------
    def _service_notify(self) -> Mapping[str, Any]:
        return ((self.svc or {}).get("spec") or {}).get("notify") or {}

    def _admins(self) -> list[str]:
        return list(self.settings.admin_emails) + list(self._service_notify().get("admins") or [])

    def _recipients(self, event: str, assignee: str) -> list[str]:
        service_admins = self._service_notify().get("admins") or []
        return nr.recipients_for(event, assignee, service_admins, self.settings.admin_emails)

    # --- opening ----------------------------------------------------------------------
    def _open(self) -> None:
        plan, spec, now, team = self.plan, self.spec, self.now, self.team
        created = plan.status.get("createdAt") or self.meta.get("creationTimestamp") or iso(now)
        created_dt = parse_or_none(created) or now
        override = ((self.svc or {}).get("spec") or {}).get("sla")
        ack_min, res_min = sla.targets(spec.get("severity"), override)
        plan.set(createdAt=created, team=team or None, observedState=State.OPEN, escalationLevel=0,
                 sla=sla.deadlines(created_dt, ack_min, res_min))
        origin = {"probe": "health probe", "alertmanager": "Alertmanager", "grafana": "Grafana alerting",
                  "api": "alert API", "manual": "a person"}.get(spec.get("source", "manual"), spec.get("source"))
        severity = spec.get("severity", DEFAULT_SEVERITY)
        plan.log(now, "opened", f"{severity} incident opened by {origin}: {spec.get('title', '')}")
        until = maintenance.active_until(self.svc, now)
        if until is not None:
            window = ((self.svc or {}).get("status") or {}).get("maintenance") or {}
            plan.set(maintenance={"until": iso(until), "reason": window.get("reason") or "",
                                  "source": window.get("source") or "service"})
            plan.log(now, "in-maintenance", f"opened during a maintenance window ({window.get('source') or 'service'}) "
                                            f"until {iso(until)}" + (f": {window['reason']}" if window.get("reason")
                                                                     else "")
                     + "; no one is paged and remediation waits")
        plan.events.append(Event("opened", "IncidentOpened", f"{severity}: {spec.get('title', '')}", "Warning"))
        if spec.get("source", "manual") == "manual":
            # The webhook and the prober count what they create; people's incidents are counted here.
            plan.count("incidents_created", severity, "manual")
        if not spec.get("managed", True):
            plan.log(now, "unmanaged", "unmanaged incident (spec.managed: false): recorded for people, no remediation")
        assignee = spec.get("assignee", "")
        if not assignee and self.schedule is not None:
            person = oncall.on_call_at(self.schedule.get("spec") or {}, now)
            assignee = person.email
            plan.spec_patch.setdefault("spec", {})["assignee"] = assignee
            plan.log(now, "assigned", f"assigned to {person.name or person.email} <{person.email}>, on call for {team}")
        elif assignee and not plan.status.get("assignee"):
            plan.log(now, "assigned", f"assigned to {assignee}")
        elif not assignee:
            plan.log(now, "unassigned", f"no OnCallSchedule {team!r} in {self.meta.get('namespace')}: unassigned"
                     if team else "the service names no team: unassigned")
        plan.set(assignee=assignee or None)
        conditions = lifecycle.set_condition(plan.status.get("conditions"), "Ready", "True", "Tracking",
                                             "incident is tracked by the operator", now=now,
                                             generation=self.meta.get("generation"))
        plan.set(conditions=conditions)
        detail = spec.get("description") or spec.get("title", "")
        plan.announce(nr.notification_key("opened"), "opened", detail, self._recipients("opened", assignee))

    # --- people's changes ----------------------------------------------------------------
    def _state_changes(self) -> None:
        plan, now = self.plan, self.now
        state = self.spec.get("state", State.OPEN)
        seen = plan.status.get("observedState") or State.OPEN
        if state == seen:
            return
        changed_at = lifecycle.changed_at({**self.inc, "status": plan.status}, now)
        effects = lifecycle.state_effects(seen, state, plan.status, changed_at)
        if not effects:
            return
        plan.set(**effects)
        ann = self.meta.get("annotations") or {}
        actor = ann.get(lifecycle.ACTOR_ANNOTATION) or "kubectl"
        why = ann.get(lifecycle.REASON_ANNOTATION)
        plan.log(now, "state", f"{seen} → {state}" + (f": {why}" if why else ""), actor=actor)
        note = f"{seen} → {state} by {actor}" + (f": {why}" if why else "")
        plan.events.append(Event(str(state), f"Incident{state.capitalize()}", note))
        severity = self.spec.get("severity", DEFAULT_SEVERITY)
        if "mttaSeconds" in effects:
            plan.count("mtta", severity, value=effects["mttaSeconds"])
        if "mttrSeconds" in effects:
            plan.count("mttr", severity, value=effects["mttrSeconds"])
        event = STATE_EVENTS.get(state)
        if event:
            plan.announce(nr.notification_key(event), event, f"{seen} → {state} by {actor}",
                          self._recipients(event, self.spec.get("assignee", "")))
        if not lifecycle.is_active(state):
            plan.forget = True

    def _assignment(self) -> None:
        plan = self.plan
        wanted = self.spec.get("assignee") or plan.spec_patch.get("spec", {}).get("assignee") or ""
        known = plan.status.get("assignee") or ""
        if wanted and wanted != known:
            actor = (self.meta.get("annotations") or {}).get(lifecycle.ACTOR_ANNOTATION) or "kubectl"
            plan.log(self.now, "assigned", f"reassigned to {wanted}" + (f" (was {known})" if known else ""),
                     actor=actor)
            plan.set(assignee=wanted)

    # --- clocks -------------------------------------------------------------------------
    def _sla(self) -> None:
        plan, now = self.plan, self.now
        view = {**self.inc, "status": plan.status}
        for kind in sla.evaluate(view, now):
            plan.set(sla={**(plan.status.get("sla") or {}), **sla.breach_fields([kind])})
            plan.count("sla_breaches", kind)
            target = (plan.status.get("sla") or {}).get(f"{kind}Minutes")
            plan.log(now, "sla-breach", f"SLA breached: not {kind}d within {target} minutes")
            plan.announce(nr.notification_key("sla_breach", kind), "sla_breach", f"not {kind}d within {target} minutes",
                          self._recipients("sla_breach", self.spec.get("assignee", "")))
        plan.wake_at(sla.next_deadline({**self.inc, "status": plan.status}, now))

    def _escalation(self) -> None:
        plan, now, schedule = self.plan, self.now, self.schedule
        if self.spec.get("state", State.OPEN) != State.OPEN or schedule is None:
            return
        sched_spec = schedule.get("spec") or {}
        steps = sched_spec.get("escalation") or []
        opened = parse_or_none(plan.status.get("createdAt")) or now
        level = int(plan.status.get("escalationLevel") or 0)
        team = plan.status.get("team") or (schedule.get("metadata") or {}).get("name", "")
        for lvl, step in oncall.escalation_due(steps, opened, level, now):
            recipients = oncall.escalation_recipients(step, sched_spec, now, self._admins())
            history = list(plan.status.get("escalations") or [])
            history.append({"level": lvl + 1, "time": iso(now), "notify": step.get("notify"), "recipients": recipients})
            plan.set(escalationLevel=lvl + 1, escalations=history)
            plan.count("escalations", team)
            plan.log(now, "escalated", f"escalation step {lvl + 1} ({step.get('notify')}, after "
                     f"{step.get('afterMinutes')} min unacknowledged): {', '.join(recipients) or 'nobody to notify'}")
            plan.announce(nr.notification_key("escalated", str(lvl + 1)), "escalated",
                          f"step {lvl + 1}: unacknowledged for {step.get('afterMinutes')} minutes", recipients)
        plan.wake_at(oncall.next_escalation_at(steps, opened, int(plan.status.get("escalationLevel") or 0)))

    def _retention_due(self) -> bool:
        days = self.settings.retention_days
        closed = parse_or_none(self.plan.status.get("closedAt"))
        if days <= 0 or self.spec.get("state") != State.CLOSED or closed is None:
            return False
        expires = closed + timedelta(days=days)
        if self.now >= expires:
            return True
        self.plan.wake_at(expires)
        return False

    # --- notifications (an outbox in status) -------------------------------------------
    def _hooks(self) -> Mapping[str, Any]:
        return self._service_notify()

    def _queue_notifications(self) -> None:
        """Record each new notification as pending before sending: sent once per event.

        One that no channel could send (nothing configured) is recorded as handled
        right away: a pending entry would only cost a second status write."""
        plan, now = self.plan, self.now
        entries = list(plan.status.get("notifications") or [])
        known = {e.get("key") for e in entries}
        hooks = self._hooks()
        for key, event, detail, recipients in plan.announcements:
            if key in known:
                continue
            known.add(key)
            entry = {"key": key, "event": event, "detail": detail[:2000], "channel": "pending",
                     "recipients": recipients, "time": iso(now), "result": "pending", "attempts": 0}
            entries.append(entry)
            skipped = nr.unconfigured(recipients, self.settings.smtp_configured,
                                      bool(hooks.get("slackWebhookURL")) or self.settings.slack_configured,
                                      bool(hooks.get("webhookURL")) or self.settings.webhook_configured)
            if skipped is not None:
                for res in skipped:
                    plan.count("notifications_sent", res.channel, "skipped")
                entries = self._apply_outcome(entries, entry, skipped)
        plan.set(notifications=entries)

    def _deliver_pending(self) -> None:
        plan, now = self.plan, self.now
        hooks = self._hooks()
        for entry in plan.status.get("notifications") or []:
            pending = entry.get("result") == "pending"
            retry = entry.get("result") == "retrying" and nr.needs_delivery([entry], entry["key"], entry["channel"], now)
            if not (pending or retry):
                if entry.get("result") == "retrying":
                    plan.wake_at(parse_or_none(entry.get("nextAttemptAt")))
                continue
            if pending and entry.get("event") == "opened" and self._awaiting_first_evidence(entry):
                continue
            view = {**self.inc, "status": plan.status}
            n = nr.notification_from_incident(view, entry["event"], entry.get("detail", ""),
                                              entry.get("recipients") or [], self.settings.dashboard_url,
                                              self.settings.console_url)
            plan.deliveries.append(Delivery(entry["key"], entry.get("channel", ""), n,
                                            None if pending else frozenset({entry["channel"]}),
                                            hooks.get("slackWebhookURL", ""), hooks.get("webhookURL", "")))

    def _awaiting_first_evidence(self, entry: Mapping[str, Any]) -> bool:
        """Whether the "opened" notification still waits for the incident's first evidence (then
        it names probable causes). It waits a bounded time: the page matters more than its hints.
        The wait is from the entry's time in status, so a restarted operator keeps the same bound."""
        plan, now = self.plan, self.now
        if not (self.settings.evidence_enabled and self.settings.evidence_wait_seconds > 0 and self.svc is not None):
            return False
        if (plan.status.get("evidence") or {}).get("gatheredAt"):
            return False
        deadline = (parse_or_none(entry.get("time")) or now) + timedelta(seconds=self.settings.evidence_wait_seconds)
        if now >= deadline:
            return False
        plan.wake_at(deadline)
        return True

    def _record_deliveries(self) -> None:
        plan = self.plan
        entries = list(plan.status.get("notifications") or [])
        changed = False
        for entry in list(entries):
            ref = (str(entry.get("key")), str(entry.get("channel")))
            if ref not in self.effects.deliveries:
                continue
            # Dropped from memory only once the status holding it is written: a conflict
            # retries with the result still there, so nothing is sent twice.
            outcome = self.effects.deliveries[ref]
            plan.taken_deliveries.append(ref)
            results = list(outcome) if not isinstance(outcome, BaseException) else [
                nr.DeliveryResult("email", entry.get("recipients") or [], ok=False, error=str(outcome))]
            entries = self._apply_outcome(entries, entry, results)
            changed = True
        if changed:
            plan.set(notifications=entries)

    def _apply_outcome(self, entries: list[dict[str, Any]], entry: dict[str, Any],
                       results: Sequence[nr.DeliveryResult]) -> list[dict[str, Any]]:
        """`entries` with one delivery round's results for `entry` merged in, and timeline lines for them."""
        plan, now = self.plan, self.now
        if entry.get("channel") == "pending":
            entries = [e for e in entries if e is not entry]
        # Unconfigured channels are not worth a status entry each; keep one only
        # when nothing was configured at all, so the event still shows as handled.
        attempted = [r for r in results if not r.skipped] or list(results[:1])
        for res in attempted:
            entries = nr.record_delivery(entries, entry["key"], entry["event"], res, now)
            # carry the rendering inputs so a retry after a restart can render again
            for e in entries:
                if e.get("key") == entry["key"] and e.get("channel") == res.channel:
                    e["detail"] = entry.get("detail", "")
            if not res.skipped:
                verb = "sent" if res.ok else "failed"
                plan.status["notifications"] = entries
                plan.log(now, f"notification-{verb}",
                         f"{entry['event']} via {res.channel} to {', '.join(res.recipients) or '-'}"
                         + (f": {res.error}" if res.error else ""))
        return entries

    # --- evidence and probable causes ------------------------------------------------------
    def _evidence(self) -> None:
        plan, now = self.plan, self.now
        found = self.effects.evidence
        if found is not None:
            plan.taken_evidence = True
            if isinstance(found, BaseException):
                previous = dict(plan.status.get("evidence") or {})
                plan.set(evidence={**previous, "gatheredAt": iso(now),
                                   "error": evidence_mod.cut(f"{found.__class__.__name__}: {found}")})
            else:
                plan.set(evidence={"error": None, **found})
                self._hints(found)
        state = self.spec.get("state", State.OPEN)
        if not (self.settings.evidence_enabled and self.svc is not None and lifecycle.is_active(state)):
            return
        gathered = parse_or_none((plan.status.get("evidence") or {}).get("gatheredAt"))
        due = gathered + timedelta(seconds=self.settings.evidence_refresh_seconds) if gathered else now
        if now >= due and not self.effects.evidence_running and found is None:
            plan.gather_evidence = True
        elif now < due:
            plan.wake_at(due)

    def _hints(self, ev: Mapping[str, Any]) -> None:
        plan, now = self.plan, self.now
        opened = parse_or_none(plan.status.get("createdAt")) or parse_or_none(self.meta.get("creationTimestamp"))
        ranked = hints_mod.rank(ev, opened)
        before = [h.get("summary") for h in plan.status.get("hints") or []]
        if before != [h["summary"] for h in ranked]:
            plan.set(hints=ranked)
        top = ranked[0] if ranked else None
        if top is not None and (not before or before[0] != top["summary"]):
            plan.log(now, "probable-cause", hints_mod.headline(top))
            if top["suggestedAction"] == SuggestedAction.ROLLBACK:
                plan.log(now, "rollback-suggested", "the top hint suggests a rollback, which this service's "
                         + ("remediation policy runs" if self._offers_rollback() else
                            "remediation policy does not run it (add a `rollback: {}` action, or "
                            "`kubectl rollout undo` it)"))

    def _people_entries(self) -> None:
        """People's comments and applied runbook steps (spec) into the timeline, each once."""
        plan, now = self.plan, self.now
        recorded = dict(plan.status.get("recorded") or {})
        changed = False
        for field_, type_ in (("comments", "comment"), ("runbookSteps", "runbook-step")):
            entries = [e for e in self.spec.get(field_) or [] if isinstance(e, Mapping)]
            done = recorded.get(field_) or 0
            if not isinstance(done, int) or done > len(entries):
                done = len(entries) if isinstance(done, int) else 0  # a person shortened the list: nothing new
            for entry in entries[done:]:
                when = parse_or_none(entry.get("time")) or now
                actor = str(entry.get("author") or "unknown")
                if type_ == "comment":
                    message = str(entry.get("text", ""))
                else:
                    message = f"step {entry.get('step')} applied: {entry.get('title') or '(untitled)'}"
                    if entry.get("note"):
                        message += f" — {entry['note']}"
                plan.log(min(when, now), type_, message, actor)
            if recorded.get(field_) != len(entries):
                recorded[field_] = len(entries)
                changed = True
        if changed:
            plan.set(recorded=recorded)

    def _seen_before(self) -> None:
        plan, now = self.plan, self.now
        seen = history.seen_before({**self.inc, "status": plan.status}, self.effects.earlier)
        before = plan.status.get("seenBefore") or []
        if seen == before:
            return
        plan.set(seenBefore=seen)
        if seen and not before:
            last = seen[0]
            cause = last.get("rootCause") or last.get("probableCause") or "no root cause written"
            plan.log(now, "seen-before", f"{len(seen)} earlier incident(s) of this service; the last: {last['name']} "
                                         f"({last['createdAt']}): {cause}")

    def _offers_rollback(self) -> bool:
        actions = (((self.svc or {}).get("spec") or {}).get("remediation") or {}).get("actions") or []
        return any(isinstance(a, Mapping) and "rollback" in a for a in actions)

    # --- remediation: the state machine ------------------------------------------------------
    def _remediation(self) -> None:
        plan, svc, now = self.plan, self.svc, self.now
        rem = dict(plan.status.get("remediation") or {})
        attempts = [dict(a) for a in rem.get("attempts") or [] if isinstance(a, Mapping)]
        key, uid = self.settings.seal_key, str(self.meta.get("uid") or "")
        if key is None or not uid:
            # Without the key no attempt can be told from a forged one: act on none.
            view = {**self.inc, "status": {**plan.status, "remediation": {**rem, "attempts": attempts}}}
            early = remediation.decide(view, svc, now, enabled_globally=self.settings.remediation_enabled,
                                       maintenance_until=maintenance.active_until(svc, now))
            if attempts or early.kind == Kind.ACT:
                self._phase(rem, attempts, "Waiting", NO_SEAL_KEY)
                return
        else:
            attempts = self._screen(attempts, key, uid, rem)
        view = {**self.inc, "status": {**plan.status, "remediation": {**rem, "attempts": attempts}}}
        decision = remediation.decide(view, svc, now, enabled_globally=self.settings.remediation_enabled,
                                      maintenance_until=maintenance.active_until(svc, now))
        # decide() puts the last attempt first when it is under way (Running: a wait naming it;
        # Verifying: verify), whatever else changed meanwhile.
        if decision.kind == Kind.WAIT and decision.attempt_id is not None:
            self._running(attempts, rem, attempts[-1])
            return
        if decision.kind == Kind.VERIFY:
            self._verify(attempts, rem, attempts[-1], decision.wait_until or now)
            return
        if decision.kind == Kind.ACT and svc is not None:  # decide() never acts without a service
            plan.acts = True
            self._act(attempts, rem, decision)
            return
        self._finish_after_crash(attempts)
        holder = (((svc or {}).get("status") or {}).get("remediation") or {}).get("inFlight")
        if decision.kind == Kind.WAIT and holder and holder != self.name and svc is not None:
            plan.orphan_holder = holder
        phase = {Kind.SKIP: "Skipped", Kind.EXHAUSTED: "Exhausted", Kind.CAPPED: "Capped",
                 Kind.WAIT: "Waiting"}[decision.kind]
        if decision.kind == Kind.SKIP and any(a.get("result") == AttemptResult.SUCCEEDED for a in attempts):
            phase = "Succeeded"
        if (rem.get("phase"), rem.get("message")) != (phase, decision.reason):
            if phase != "Succeeded":
                self._phase(rem, attempts, phase, decision.reason)
            if decision.kind in (Kind.EXHAUSTED, Kind.CAPPED):
                plan.log(now, f"remediation-{phase.lower()}", decision.reason)
                plan.announce(nr.notification_key("escalated", f"remediation-{phase.lower()}"), "escalated",
                              decision.reason, self._admins() + [self.spec.get("assignee", "")])
        plan.wake_at(decision.wait_until)

    def _phase(self, rem: dict[str, Any], attempts: list[dict[str, Any]], phase: str, message: str) -> None:
        if (rem.get("phase"), rem.get("message")) != (phase, message):
            rem.update(phase=phase, message=message)
            self.plan.set(remediation={**rem, "attempts": attempts})

    def _screen(self, attempts: list[dict[str, Any]], key: bytes, uid: str,
                rem: dict[str, Any]) -> list[dict[str, Any]]:
        """The attempts the operator recorded itself (their seal verifies); the others are dropped
        from status, and the timeline says so: nothing acts on them. Unsealed attempts of an
        incident created before sealing began (`sealed_since`) stay as history, but one still
        under way is over: never resumed, never verified."""
        plan, now = self.plan, self.now
        created = parse_or_none(self.meta.get("creationTimestamp"))
        since = self.settings.sealed_since
        legacy = since is not None and created is not None and created < since
        kept: list[dict[str, Any]] = []
        changed = False
        for position, attempt in enumerate(attempts):
            if seal.verify(key, uid, attempt):
                kept.append(attempt)
            elif legacy:
                kept.append(attempt)
                if attempt.get("result") in IN_PROGRESS_RESULTS:
                    changed = True
                    plan.log(now, "remediation-failed",
                             f"{_attempt_line(attempt, position)} carries no seal of Paramedic's: it was recorded "
                             "before Paramedic sealed its attempts, or not by Paramedic; not resumed, not verified")
                    attempt.update(result=AttemptResult.INTERRUPTED, finishedAt=attempt.get("finishedAt") or iso(now),
                                   message="unsealed (recorded before Paramedic sealed its attempts, or not by "
                                           "Paramedic): not resumed")
                    self._release()
            else:
                changed = True
                plan.log(now, "remediation-ignored",
                         f"ignored {_attempt_line(attempt, position)} found in status: Paramedic did not record it "
                         "(its seal is missing or does not verify), so nothing acts on it; removed. Only Paramedic "
                         "writes Incident status (its admission policy refuses anyone else)")
                action = attempt.get("action")
                plan.count("remediations", action if action in remediation.ACTION_TYPES else "unknown", "ignored")
        if changed:
            rem["attempts"] = kept
            plan.set(remediation={**rem, "attempts": kept})
        return kept

    def _act(self, attempts: list[dict[str, Any]], rem: dict[str, Any], decision: remediation.Decision) -> None:
        plan, now, svc = self.plan, self.now, self.svc or {}
        target = (svc.get("spec") or {}).get("target") or {}
        what = remediation.describe_action(decision.action or {}, target)
        index = decision.action_index or 0
        attempt: dict[str, Any] = {
            "id": decision.attempt_id, "index": index, "action": remediation.action_type(decision.action),
            "detail": what, "dryRun": decision.dry_run,
            "service": (svc.get("metadata") or {}).get("name"), "target": seal.target_ref(target),
            "actionDigest": seal.action_digest(decision.action),
            "startedAt": iso(now), "restartedAt": iso_ms(now)}  # two attempts in one second differ
        # Sealed: only an attempt carrying the operator's seal is ever resumed or verified.
        attempt = seal.sealed(self.settings.seal_key or b"", str(self.meta.get("uid") or ""), attempt)
        if decision.dry_run:
            attempt.update(result=AttemptResult.DRY_RUN, finishedAt=iso(now), message=f"dry run: would {what}")
            plan.count("remediations", attempt["action"], "dry_run")
            plan.log(now, "remediation-dry-run", f"attempt {index + 1}: would {what} (dryRun)")
        else:
            attempt["result"] = AttemptResult.RUNNING
            plan.log(now, "remediation-started", f"attempt {index + 1}: {what}")
        attempts.append(attempt)
        rem.update(phase="Running" if not decision.dry_run else "DryRun", message=decision.reason, attempts=attempts)
        plan.set(remediation=rem)
        if decision.dry_run:
            return
        # Claim the service (hourly cap, one at a time) before acting.
        svc_status = (svc.get("status") or {}).get("remediation") or {}
        recent = remediation.prune_recent(svc_status.get("recent"), now)
        if not claim_counted(svc_status, self.name, recent, attempts[:-1]):
            recent.append(iso(now))
        plan.claim = {"inFlight": self.name, "recent": recent}
        plan.start_attempt = attempt

    def _finish_after_crash(self, attempts: list[dict[str, Any]]) -> None:
        """What follows an attempt's end in status (the move to mitigated, the release of the
        service) is written after it: an operator killed in between lost it. Redo it."""
        plan = self.plan
        last = attempts[-1] if attempts else None
        if last is not None and last.get("result") == AttemptResult.SUCCEEDED \
                and self.spec.get("state") in lifecycle.REMEDIABLE_STATES \
                and "state" not in plan.spec_patch.get("spec", {}):
            plan.spec_patch = lifecycle.spec_patch({**plan.spec_patch.get("spec", {}), "state": State.MITIGATED},
                                                   REMEDIATION_ACTOR, last.get("message") or "remediation succeeded")
        if (((self.svc or {}).get("status") or {}).get("remediation") or {}).get("inFlight") == self.name:
            self._release()

    def _running(self, attempts: list[dict[str, Any]], rem: dict[str, Any], attempt: dict[str, Any]) -> None:
        plan, now, svc = self.plan, self.now, self.svc
        att_id = str(attempt.get("id"))
        if att_id in self.effects.running:
            return
        outcome: dict[str, Any]
        if att_id not in self.effects.attempt_results:
            # Nothing in memory: the operator restarted mid-attempt.
            hold = None
            if attempt.get("action") in RESUMABLE_ACTIONS and svc is not None:
                # Resuming acts again: only if every switch still allows it, and it is the same act.
                hold = remediation.resume_hold({**self.inc, "status": plan.status}, svc, attempt,
                                               enabled_globally=self.settings.remediation_enabled,
                                               maintenance_until=maintenance.active_until(svc, now))
                if hold is None:
                    # Idempotent: finishing it cannot restart twice.
                    plan.log(now, "remediation-resumed",
                             f"resuming attempt {attempt.get('index', 0) + 1} after a restart")
                    plan.start_attempt = attempt
                    return
            outcome = {"result": AttemptResult.INTERRUPTED,
                       "message": "the operator restarted during the run; "
                                  + (f"not resumed: {hold}" if hold else "not repeated")}
        else:
            found = self.effects.attempt_results[att_id]
            plan.taken_attempts.append(att_id)
            if isinstance(found, BaseException):
                outcome = {"result": AttemptResult.FAILED, "message": f"{found.__class__.__name__}: {found}"}
            else:
                outcome = dict(found)
        attempt.update(outcome)
        attempt["finishedAt"] = attempt.get("finishedAt") or iso(now)
        action = attempt.get("action", "unknown")
        started = parse_or_none(attempt.get("startedAt")) or now
        plan.count("remediation_duration", action, value=max(0.0, (now - started).total_seconds()))
        idx = attempt.get("index", 0) + 1
        if attempt["result"] == AttemptResult.VERIFYING:
            verify = int((((svc or {}).get("spec") or {}).get("remediation") or {}).get(
                "verifySeconds", remediation.DEFAULT_VERIFY_SECONDS))
            attempt["verifyBy"] = iso(now + timedelta(seconds=verify))
            plan.log(now, "remediation-acted", f"attempt {idx}: {attempt.get('message', 'done')}; verifying recovery")
            plan.wake_at(now + timedelta(seconds=verify))
            rem["phase"] = "Verifying"
        else:
            plan.count("remediations", action, str(attempt["result"]).lower())
            plan.log(now, "remediation-failed",
                     f"attempt {idx} {str(attempt['result']).lower()}: {attempt.get('message', '')}")
            rem["phase"] = "Failed"
            self._release()
            self._announce_result(attempt)
            plan.wake_at(now)  # the next decision (cooldown) comes from decide()
        rem["attempts"] = attempts
        plan.set(remediation=rem)

    def _verify(self, attempts: list[dict[str, Any]], rem: dict[str, Any], attempt: dict[str, Any],
                verify_by: datetime) -> None:
        plan, now = self.plan, self.now
        recovered, how = self._recovered(attempt)
        idx = attempt.get("index", 0) + 1
        if recovered:
            attempt.update(result=AttemptResult.SUCCEEDED, message=how)
            rem["phase"] = "Succeeded"
            plan.count("remediations", attempt.get("action", "unknown"), "succeeded")
            plan.log(now, "remediation-succeeded", f"attempt {idx} worked: {how}")
            if self.spec.get("state") in lifecycle.REMEDIABLE_STATES:
                plan.spec_patch = lifecycle.spec_patch({**plan.spec_patch.get("spec", {}), "state": State.MITIGATED},
                                                       REMEDIATION_ACTOR, how, now)
            if not plan.status.get("mitigatedAt"):
                # Remediation mitigated it, even when the incident resolved in the meantime (the
                # probe saw the service healthy first) or resolves at once: say when.
                plan.set(mitigatedAt=plan.status.get("resolvedAt") or iso(now))
            self._release()
            self._announce_result(attempt)
        elif now >= verify_by:
            attempt.update(result=AttemptResult.FAILED,
                           message=f"{attempt.get('message', 'acted')}, but the service did not "
                                   f"recover before {iso(verify_by)}")
            rem["phase"] = "Failed"
            plan.count("remediations", attempt.get("action", "unknown"), "failed")
            plan.log(now, "remediation-failed", f"attempt {idx}: the service did not recover in time")
            self._release()
            self._announce_result(attempt)
            plan.wake_at(now)
        else:
            plan.wake_at(verify_by)
            return
        rem["attempts"] = attempts
        plan.set(remediation=rem)

    def _recovered(self, attempt: Mapping[str, Any]) -> tuple[bool, str]:
        state = self.spec.get("state", State.OPEN)
        if not lifecycle.is_active(state):
            return True, f"incident is {state}"
        alerts = (self.inc.get("status") or {}).get("alerts") or []
        if self.svc is not None and (self.svc.get("spec") or {}).get("probe"):
            health, last = self.effects.probe or ("Unknown", "")
            after = parse_or_none(attempt.get("finishedAt"))
            probed = parse_or_none(last)
            if health == "Healthy" and (after is None or (probed is not None and probed >= after)):
                return True, "the probe is healthy again"
            return False, ""
        if alerts:
            if all(a.get("status") == "resolved" for a in alerts):
                return True, "all alerts resolved"
            return False, ""
        return True, "the rollout finished (no probe or alerts to confirm)"

    def _release(self) -> None:
        if self.svc is not None:
            self.plan.release_claim = True

    def _announce_result(self, attempt: Mapping[str, Any]) -> None:
        self.plan.announce(nr.notification_key("remediation", attempt.get("id", "")), "remediation",
                           f"{attempt.get('detail', attempt.get('action'))}: {attempt.get('result')} "
                           f"— {attempt.get('message', '')}",
                           self._recipients("remediation", self.spec.get("assignee", "")))
