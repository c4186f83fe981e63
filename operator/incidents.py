"""Incident reconciliation: lifecycle bookkeeping, assignment, SLA clocks,
escalation, notifications and remediation.

Every decision is written to the Incident's status (guarded by its
resourceVersion) before it is acted on, so a restarted operator resumes
decisions instead of repeating or skipping them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from paramedic import kube, metrics
from paramedic.domain import lifecycle, oncall, remediation, sla
from paramedic.domain import notify_render as nr
from paramedic.domain.remediation import Kind
from paramedic.domain.timeutil import iso, iso_ms, parse_or_none, utcnow
from paramedic.domain.vocabulary import DEFAULT_SEVERITY, AttemptResult, State
from paramedic.remediation_io import run_attempt

from .runtime import Key, Runtime

log = logging.getLogger(__name__)

OPERATOR = "paramedic/operator"
ACTOR_ANNOTATION, REASON_ANNOTATION = lifecycle.ACTOR_ANNOTATION, lifecycle.REASON_ANNOTATION
STATE_EVENTS = {State.RESOLVED: "resolved", State.CLOSED: "closed"}


class Plan:
    """Status changes gathered during one reconciliation, written in one patch."""

    def __init__(self, incident: dict, limit: int):
        self.incident = incident
        self.status: dict[str, Any] = dict(incident.get("status") or {})
        self.patch: dict[str, Any] = {}
        self.spec_patch: dict[str, Any] = {}
        self.limit = limit
        self.notify: list[tuple[str, str, str, list[str]]] = []  # (key, event, detail, recipients)
        self.wake: list[datetime] = []
        self.after_write: list[Any] = []  # callables run once the status is stored

    def set(self, **fields: Any) -> None:
        self.status.update(fields)
        self.patch.update(fields)

    def log(self, now: datetime, type_: str, message: str, actor: str = OPERATOR) -> None:
        entry = lifecycle.timeline_entry(now, type_, actor, message)
        self.set(timeline=lifecycle.append_timeline(self.status.get("timeline"), entry, self.limit))

    def announce(self, key: str, event: str, detail: str, recipients: list[str]) -> None:
        self.notify.append((key, event, detail, recipients))

    def wake_at(self, when: datetime | None) -> None:
        if when is not None:
            self.wake.append(when)


class IncidentReconciler:
    def __init__(self, rt: Runtime):
        self.rt = rt
        from paramedic.notify import Notifier

        self.notifier = Notifier(rt.settings)
        self.queue: Any = None  # set by the operator

    # --- entry point ------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        inc = self.rt.incidents.get(key)
        if inc is None:
            return None
        ns, name = key
        now = utcnow()
        wait = _awaiting_creator(inc, now)
        if wait:
            return wait
        svc = self.rt.services.get((ns, inc["spec"].get("service", "")))
        if svc is None and inc["spec"].get("managed", True):
            # Right after a restart the incident watch may deliver before the services
            # watch: ask the API rather than mistake "not cached yet" for "gone".
            svc = await self.rt.client.get_or_none(kube.MONITORED_SERVICES, inc["spec"].get("service", ""), ns)
        team = ((svc or {}).get("spec") or {}).get("team", "") or (inc.get("status") or {}).get("team", "")
        schedule = self.rt.schedules.get((ns, team)) if team else None
        if team and schedule is None:
            # As for services: right after a start the schedules watch may lag behind.
            schedule = await self.rt.client.get_or_none(kube.ONCALL_SCHEDULES, team, ns)
        plan = Plan(inc, self.rt.settings.timeline_limit)

        # observedState is the operator's own mark; creators (the webhook) may have
        # written createdAt and alerts already.
        if not plan.status.get("observedState"):
            self._open(plan, inc, svc, schedule, team, now)
        self._state_changes(plan, inc, svc, now)
        self._assignment(plan, inc, now)
        self._sla(plan, inc, svc, schedule, now)
        self._escalation(plan, inc, svc, schedule, now)
        self._record_deliveries(plan, inc, now)
        await self._remediation(plan, inc, svc, now)
        if self._retention_due(plan, inc, now):
            await self.rt.client.delete(kube.INCIDENTS, name, ns)
            log.info("deleted %s/%s: closed longer than %d days", ns, name, self.rt.settings.retention_days)
            return None

        if plan.notify:
            self._queue_notifications(plan, inc, now)
        gen = inc["metadata"].get("generation")
        if plan.status.get("observedGeneration") != gen:
            plan.set(observedGeneration=gen)
        written = inc
        spec_first = bool(plan.spec_patch) and "state" not in plan.spec_patch.get("spec", {})
        try:
            if spec_first:
                # An assignment goes first, guarded like the status: the status then records
                # the new generation as observed instead of costing a write of its own later.
                written = await self._write(inc, plan.spec_patch)
                plan.set(observedGeneration=written["metadata"].get("generation"))
            if plan.patch:
                written = await self._write(written, {"status": plan.patch}, subresource="status")
        except kube.Conflict:
            return 0.0  # someone wrote in between: decide again at once on the fresh object
        if plan.spec_patch and not spec_first:
            # A state change follows the status that justifies it (a crash in between is redone).
            await self.rt.client.patch(kube.INCIDENTS, name, plan.spec_patch, ns)
        for run in plan.after_write:
            run()
        self._deliver_pending(inc, plan, now)
        return _seconds_until(min(plan.wake), now) if plan.wake else None

    async def _write(self, inc: dict, patch: dict, subresource: str | None = None) -> dict:
        """A merge patch guarded by the resourceVersion the decision was made on."""
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        body = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": inc["metadata"]["resourceVersion"]}}
        try:
            updated = await self.rt.client.patch(kube.INCIDENTS, name, body, ns, subresource=subresource)
        except kube.Conflict:
            # Someone (the webhook, a person) wrote in between: re-read and decide again.
            fresh = await self.rt.client.get_or_none(kube.INCIDENTS, name, ns)
            if fresh is not None:
                self.rt.incidents.put(fresh)
            raise
        self.rt.incidents.put(updated)
        return updated

    # --- opening ----------------------------------------------------------------------
    def _open(self, plan: Plan, inc: dict, svc: dict | None, schedule: dict | None, team: str, now: datetime) -> None:
        spec = inc["spec"]
        created = plan.status.get("createdAt") or inc["metadata"].get("creationTimestamp") or iso(now)
        created_dt = parse_or_none(created) or now
        override = ((svc or {}).get("spec") or {}).get("sla")
        ack_min, res_min = sla.targets(spec.get("severity"), override)
        plan.set(createdAt=created, team=team or None, observedState=State.OPEN, escalationLevel=0,
                 sla=sla.deadlines(created_dt, ack_min, res_min))
        origin = {"probe": "health probe", "alertmanager": "Alertmanager", "grafana": "Grafana alerting",
                  "api": "alert API", "manual": "a person"}.get(spec.get("source", "manual"), spec.get("source"))
        plan.log(now, "opened", f"{spec.get('severity', 'high')} incident opened by {origin}: {spec.get('title', '')}")
        plan.after_write.append(lambda: self.rt.effects.spawn(
            f"event:{inc['metadata'].get('uid')}:opened", None,
            self.rt.post_event(inc, "IncidentOpened", f"{spec.get('severity', 'high')}: {spec.get('title', '')}",
                               "Warning")))
        if spec.get("source", "manual") == "manual":
            # The webhook and the prober count what they create; people's incidents are counted here.
            metrics.INCIDENTS_CREATED.labels(spec.get("severity", DEFAULT_SEVERITY), "manual").inc()
        if not spec.get("managed", True):
            plan.log(now, "unmanaged", "no MonitoredService matched: recorded for people, no remediation")
        assignee = spec.get("assignee", "")
        if not assignee and schedule is not None:
            person = oncall.on_call_at(schedule.get("spec") or {}, now)
            assignee = person.email
            plan.spec_patch.setdefault("spec", {})["assignee"] = assignee
            plan.log(now, "assigned", f"assigned to {person.name or person.email} <{person.email}>, on call for {team}")
        elif assignee and not plan.status.get("assignee"):
            plan.log(now, "assigned", f"assigned to {assignee}")
        elif not assignee:
            plan.log(now, "unassigned", f"no OnCallSchedule {team!r} in {inc['metadata']['namespace']}: unassigned"
                     if team else "the service names no team: unassigned")
        plan.set(assignee=assignee or None)
        conditions = lifecycle.set_condition(plan.status.get("conditions"), "Ready", "True", "Tracking",
                                             "incident is tracked by the operator", now=now,
                                             generation=inc["metadata"].get("generation"))
        plan.set(conditions=conditions)
        detail = spec.get("description") or spec.get("title", "")
        plan.announce(nr.notification_key("opened"), "opened", detail,
                      self._recipients("opened", assignee, svc))

    # --- people's changes ----------------------------------------------------------------
    def _state_changes(self, plan: Plan, inc: dict, svc: dict | None, now: datetime) -> None:
        state = inc["spec"].get("state", State.OPEN)
        seen = plan.status.get("observedState") or State.OPEN
        if state == seen:
            return
        changed_at = lifecycle.changed_at({**inc, "status": plan.status}, now)
        effects = lifecycle.state_effects(seen, state, plan.status, changed_at)
        if not effects:
            return
        plan.set(**effects)
        ann = inc["metadata"].get("annotations") or {}
        actor = ann.get(ACTOR_ANNOTATION) or "kubectl"
        why = ann.get(REASON_ANNOTATION)
        plan.log(now, "state", f"{seen} → {state}" + (f": {why}" if why else ""), actor=actor)
        note = f"{seen} → {state} by {actor}" + (f": {why}" if why else "")
        plan.after_write.append(lambda: self.rt.effects.spawn(
            f"event:{inc['metadata'].get('uid')}:{state}", None,
            self.rt.post_event(inc, f"Incident{state.capitalize()}", note)))
        severity = inc["spec"].get("severity", DEFAULT_SEVERITY)
        if "mttaSeconds" in effects:
            metrics.INCIDENT_MTTA.labels(severity).observe(effects["mttaSeconds"])
        if "mttrSeconds" in effects:
            metrics.INCIDENT_MTTR.labels(severity).observe(effects["mttrSeconds"])
        event = STATE_EVENTS.get(state)
        if event:
            plan.announce(nr.notification_key(event), event, f"{seen} → {state} by {actor}",
                          self._recipients(event, inc["spec"].get("assignee", ""), svc))
        if not lifecycle.is_active(state):
            service = inc["spec"].get("service", "")
            ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
            recon = self.rt.service_reconciler
            if recon is not None:
                plan.after_write.append(lambda: self._spawn_forget(recon, (ns, service), name))

    def _spawn_forget(self, recon: Any, svc_key: Key, name: str) -> None:
        self.rt.effects.spawn(f"forget:{svc_key}:{name}", None, recon.forget_incident(svc_key, name))

    def _assignment(self, plan: Plan, inc: dict, now: datetime) -> None:
        wanted = inc["spec"].get("assignee") or plan.spec_patch.get("spec", {}).get("assignee") or ""
        known = plan.status.get("assignee") or ""
        if wanted and wanted != known:
            actor = (inc["metadata"].get("annotations") or {}).get(ACTOR_ANNOTATION) or "kubectl"
            plan.log(now, "assigned", f"reassigned to {wanted}" + (f" (was {known})" if known else ""), actor=actor)
            plan.set(assignee=wanted)

    # --- clocks -------------------------------------------------------------------------
    def _sla(self, plan: Plan, inc: dict, svc: dict | None, schedule: dict | None, now: datetime) -> None:
        view = {**inc, "status": plan.status}
        for kind in sla.evaluate(view, now):
            plan.set(sla={**(plan.status.get("sla") or {}), **sla.breach_fields([kind])})
            metrics.SLA_BREACHES.labels(kind).inc()
            target = (plan.status.get("sla") or {}).get(f"{kind}Minutes")
            plan.log(now, "sla-breach", f"SLA breached: not {kind}d within {target} minutes")
            plan.announce(nr.notification_key("sla_breach", kind), "sla_breach",
                          f"not {kind}d within {target} minutes",
                          self._recipients("sla_breach", inc["spec"].get("assignee", ""), svc))
        plan.wake_at(sla.next_deadline({**inc, "status": plan.status}, now))

    def _escalation(self, plan: Plan, inc: dict, svc: dict | None, schedule: dict | None, now: datetime) -> None:
        if inc["spec"].get("state", State.OPEN) != State.OPEN or schedule is None:
            return
        sched_spec = schedule.get("spec") or {}
        steps = sched_spec.get("escalation") or []
        opened = parse_or_none(plan.status.get("createdAt")) or now
        level = int(plan.status.get("escalationLevel") or 0)
        team = plan.status.get("team") or schedule["metadata"]["name"]
        for lvl, step in oncall.escalation_due(steps, opened, level, now):
            recipients = oncall.escalation_recipients(step, sched_spec, now, self._admins(svc))
            history = list(plan.status.get("escalations") or [])
            history.append({"level": lvl + 1, "time": iso(now), "notify": step.get("notify"), "recipients": recipients})
            plan.set(escalationLevel=lvl + 1, escalations=history)
            metrics.ESCALATIONS.labels(team).inc()
            plan.log(now, "escalated", f"escalation step {lvl + 1} ({step.get('notify')}, after "
                     f"{step.get('afterMinutes')} min unacknowledged): {', '.join(recipients) or 'nobody to notify'}")
            plan.announce(nr.notification_key("escalated", str(lvl + 1)), "escalated",
                          f"step {lvl + 1}: unacknowledged for {step.get('afterMinutes')} minutes", recipients)
        plan.wake_at(oncall.next_escalation_at(steps, opened, int(plan.status.get("escalationLevel") or 0)))

    def _retention_due(self, plan: Plan, inc: dict, now: datetime) -> bool:
        days = self.rt.settings.retention_days
        closed = parse_or_none(plan.status.get("closedAt"))
        if days <= 0 or inc["spec"].get("state") != State.CLOSED or closed is None:
            return False
        expires = closed + timedelta(days=days)
        if now >= expires:
            return True
        plan.wake_at(expires)
        return False

    # --- notifications (an outbox in status) -------------------------------------------
    def _admins(self, svc: dict | None) -> list[str]:
        notify = ((svc or {}).get("spec") or {}).get("notify") or {}
        return list(self.rt.settings.admin_emails) + list(notify.get("admins") or [])

    def _recipients(self, event: str, assignee: str, svc: dict | None) -> list[str]:
        service_admins = (((svc or {}).get("spec") or {}).get("notify") or {}).get("admins") or []
        return nr.recipients_for(event, assignee, service_admins, self.rt.settings.admin_emails)

    def _queue_notifications(self, plan: Plan, inc: dict, now: datetime) -> None:
        """Record each new notification as pending before sending: sent once per event.

        One that no channel could send (nothing configured) is recorded as handled
        right away: a pending entry would only cost a second status write."""
        entries = list(plan.status.get("notifications") or [])
        known = {e.get("key") for e in entries}
        hooks = self._hooks(inc)
        for key, event, detail, recipients in plan.notify:
            if key in known:
                continue
            known.add(key)
            entry = {"key": key, "event": event, "detail": detail[:2000], "channel": "pending",
                     "recipients": recipients, "time": iso(now), "result": "pending", "attempts": 0}
            entries.append(entry)
            skipped = self.notifier.unconfigured(recipients, hooks.get("slackWebhookURL", ""),
                                                 hooks.get("webhookURL", ""))
            if skipped is not None:
                entries = self._apply_outcome(plan, entries, entry, skipped, now)
        plan.set(notifications=entries)

    def _hooks(self, inc: dict) -> dict:
        svc = self.rt.services.get((inc["metadata"]["namespace"], inc["spec"].get("service", ""))) or {}
        return (svc.get("spec") or {}).get("notify") or {}

    def _deliver_pending(self, inc: dict, plan: Plan, now: datetime) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        uid = inc["metadata"].get("uid", name)
        entries = plan.status.get("notifications") or []
        for entry in entries:
            pending = entry.get("result") == "pending"
            retry = entry.get("result") == "retrying" and nr.needs_delivery([entry], entry["key"], entry["channel"], now)
            if not (pending or retry):
                if entry.get("result") == "retrying":
                    plan.wake_at(parse_or_none(entry.get("nextAttemptAt")))
                continue
            effect = f"notify:{uid}:{entry['key']}:{entry.get('channel')}"
            view = {**inc, "status": plan.status}
            n = nr.notification_from_incident(view, entry["event"], entry.get("detail", ""), entry.get("recipients") or [],
                                              self.rt.settings.dashboard_url)
            channels = None if pending else {entry["channel"]}
            hooks = self._hooks(inc)
            self.rt.effects.spawn(effect, (ns, name), self.notifier.deliver(
                n, channels, slack_url=hooks.get("slackWebhookURL", ""), webhook_url=hooks.get("webhookURL", "")))

    def _record_deliveries(self, plan: Plan, inc: dict, now: datetime) -> None:
        uid = inc["metadata"].get("uid", inc["metadata"]["name"])
        entries = list(plan.status.get("notifications") or [])
        changed = False
        for entry in list(entries):
            effect = f"notify:{uid}:{entry.get('key')}:{entry.get('channel')}"
            if not self.rt.effects.has_result(effect):
                continue
            # Dropped from memory only once the status holding it is written: a conflict
            # retries with the result still here, so nothing is sent twice.
            outcome = self.rt.effects.peek(effect)
            plan.after_write.append(lambda e=effect: self.rt.effects.take(e))
            results = outcome if isinstance(outcome, list) else [
                nr.DeliveryResult("email", entry.get("recipients") or [], ok=False, error=str(outcome))]
            entries = self._apply_outcome(plan, entries, entry, results, now)
            changed = True
        if changed:
            plan.set(notifications=entries)

    def _apply_outcome(self, plan: Plan, entries: list[dict], entry: dict, results: list[nr.DeliveryResult],
                       now: datetime) -> list[dict]:
        """`entries` with one delivery round's results for `entry` merged in, and timeline lines for them."""
        if entry.get("channel") == "pending":
            entries = [e for e in entries if e is not entry]
        # Unconfigured channels are not worth a status entry each; keep one only
        # when nothing was configured at all, so the event still shows as handled.
        attempted = [r for r in results if not r.skipped] or results[:1]
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

    # --- remediation ------------------------------------------------------------------------
    async def _remediation(self, plan: Plan, inc: dict, svc: dict | None, now: datetime) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        rem = dict(plan.status.get("remediation") or {})
        attempts = [dict(a) for a in rem.get("attempts") or []]
        view = {**inc, "status": {**plan.status, "remediation": {**rem, "attempts": attempts}}}
        last = attempts[-1] if attempts else None
        # An attempt under way is finished whatever happened meanwhile (a person or the
        # probe may have resolved the incident): its outcome must still be recorded.
        if last is not None and last.get("result") == AttemptResult.RUNNING:
            self._running(plan, inc, svc, attempts, rem, last, now)
            return
        if last is not None and last.get("result") == AttemptResult.VERIFYING:
            self._verify(plan, inc, svc, attempts, rem, last, now)
            return
        decision = remediation.decide(view, svc, now, enabled_globally=self.rt.settings.remediation_enabled)
        if decision.kind == Kind.ACT and svc is not None:
            # The cache may not show another incident's claim yet: decide again on the stored
            # service, whose resourceVersion then guards the claim (one remediation at a time).
            svc = await self.rt.client.get_or_none(kube.MONITORED_SERVICES, svc["metadata"]["name"], ns)
            decision = remediation.decide(view, svc, now, enabled_globally=self.rt.settings.remediation_enabled)
        if decision.kind == Kind.ACT and svc is not None:  # decide() never acts without a service
            await self._act(plan, inc, svc, attempts, rem, decision, now)
            return
        self._finish_after_crash(plan, inc, svc, attempts)
        holder = (((svc or {}).get("status") or {}).get("remediation") or {}).get("inFlight")
        if decision.kind == Kind.WAIT and holder and holder != name and svc is not None:
            if await self._release_orphaned_claim(svc, holder):
                plan.wake_at(now + timedelta(seconds=1))  # once the watch shows the freed service
        phase = {Kind.SKIP: "Skipped", Kind.EXHAUSTED: "Exhausted", Kind.CAPPED: "Capped",
                 Kind.WAIT: "Waiting"}[decision.kind]
        if decision.kind == Kind.SKIP and any(a.get("result") == AttemptResult.SUCCEEDED for a in attempts):
            phase = "Succeeded"
        if (rem.get("phase"), rem.get("message")) != (phase, decision.reason):
            if phase != "Succeeded":
                rem.update(phase=phase, message=decision.reason)
                plan.set(remediation={**rem, "attempts": attempts})
            if decision.kind in (Kind.EXHAUSTED, Kind.CAPPED):
                plan.log(now, f"remediation-{phase.lower()}", decision.reason)
                plan.announce(nr.notification_key("escalated", f"remediation-{phase.lower()}"), "escalated",
                              decision.reason, self._admins(svc) + [inc["spec"].get("assignee", "")])
        plan.wake_at(decision.wait_until)

    async def _act(self, plan: Plan, inc: dict, svc: dict, attempts: list, rem: dict, decision: Any,
                   now: datetime) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        target = (svc.get("spec") or {}).get("target") or {}
        what = remediation.describe_action(decision.action, target)
        attempt = {"id": decision.attempt_id, "index": decision.action_index,
                   "action": remediation.action_type(decision.action), "detail": what, "dryRun": decision.dry_run,
                   "startedAt": iso(now), "restartedAt": iso_ms(now)}  # two attempts in one second differ
        if decision.dry_run:
            attempt.update(result=AttemptResult.DRY_RUN, finishedAt=iso(now), message=f"dry run: would {what}")
            metrics.REMEDIATIONS.labels(attempt["action"], "dry_run").inc()
            plan.log(now, "remediation-dry-run", f"attempt {decision.action_index + 1}: would {what} (dryRun)")
        else:
            attempt["result"] = AttemptResult.RUNNING
            plan.log(now, "remediation-started", f"attempt {decision.action_index + 1}: {what}")
        attempts.append(attempt)
        rem.update(phase="Running" if not decision.dry_run else "DryRun", message=decision.reason, attempts=attempts)
        plan.set(remediation=rem)
        if decision.dry_run:
            return
        # Claim the service (hourly cap, one at a time) before acting.
        svc_status = (svc.get("status") or {}).get("remediation") or {}
        recent = remediation.prune_recent(svc_status.get("recent"), now)
        if svc_status.get("inFlight") != name:  # not a claim repeated after a failed status write or a crash
            recent.append(iso(now))
        # A Conflict (someone wrote the service since it was read) fails this reconciliation
        # before anything is recorded; the retry decides again.
        await self.rt.client.patch(kube.MONITORED_SERVICES, svc["metadata"]["name"],
                                   {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                                    "status": {"remediation": {"inFlight": name, "recent": recent}}}, ns,
                                   subresource="status")
        plan.after_write.append(lambda: self._spawn_action(inc, svc, attempt))

    async def _release_orphaned_claim(self, svc: dict, holder: str) -> bool:
        """Free the service when the incident holding it was deleted (nothing else ever would)."""
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        if await self.rt.client.get_or_none(kube.INCIDENTS, holder, ns) is not None:
            return False
        try:
            await self.rt.client.patch(kube.MONITORED_SERVICES, svc_name,
                                       {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                                        "status": {"remediation": {"inFlight": None}}}, ns, subresource="status")
        except kube.Conflict:
            pass  # the service changed meanwhile: the next look decides again
        log.info("released %s/%s: its remediation claim was held by deleted incident %s", ns, svc_name, holder)
        return True

    def _finish_after_crash(self, plan: Plan, inc: dict, svc: dict | None, attempts: list) -> None:
        """What follows an attempt's end in status (the move to mitigated, the release of the
        service) is written after it: an operator killed in between lost it. Redo it."""
        name = inc["metadata"]["name"]
        last = attempts[-1] if attempts else None
        if last is not None and last.get("result") == AttemptResult.SUCCEEDED \
                and inc["spec"].get("state") in lifecycle.REMEDIABLE_STATES \
                and "state" not in plan.spec_patch.get("spec", {}):
            plan.spec_patch = lifecycle.spec_patch({**plan.spec_patch.get("spec", {}), "state": State.MITIGATED},
                                                   "paramedic/remediation", last.get("message") or "remediation succeeded")
        if (((svc or {}).get("status") or {}).get("remediation") or {}).get("inFlight") == name:
            self._release(plan, inc, svc)

    def _spawn_action(self, inc: dict, svc: dict, attempt: dict) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        effect = f"remediate:{inc['metadata'].get('uid', name)}:{attempt['id']}"
        self.rt.effects.spawn(effect, (ns, name), run_attempt(self.rt.client, self.rt.settings, inc, svc, attempt))

    def _running(self, plan: Plan, inc: dict, svc: dict | None, attempts: list, rem: dict, attempt: dict,
                 now: datetime) -> None:
        name = inc["metadata"]["name"]
        effect = f"remediate:{inc['metadata'].get('uid', name)}:{attempt.get('id')}"
        if self.rt.effects.running(effect):
            return
        if not self.rt.effects.has_result(effect):
            # Nothing in memory: the operator restarted mid-attempt.
            if attempt.get("action") in ("restart", "scale") and svc is not None:
                # Idempotent (keyed by restartedAt / replica count): finishing it cannot restart twice.
                plan.log(now, "remediation-resumed", f"resuming attempt {attempt.get('index', 0) + 1} after a restart")
                self._spawn_action(inc, svc, attempt)
                return
            outcome: dict[str, Any] = {"result": AttemptResult.INTERRUPTED,
                                       "message": "the operator restarted during the run; not repeated"}
        else:
            outcome = self.rt.effects.peek(effect)
            plan.after_write.append(lambda e=effect: self.rt.effects.take(e))
            if isinstance(outcome, Exception):
                outcome = {"result": AttemptResult.FAILED, "message": f"{outcome.__class__.__name__}: {outcome}"}
            else:
                outcome = dict(outcome)
        attempt.update(outcome)
        attempt["finishedAt"] = attempt.get("finishedAt") or iso(now)
        action = attempt.get("action", "unknown")
        started = parse_or_none(attempt.get("startedAt")) or now
        metrics.REMEDIATION_DURATION.labels(action).observe(max(0.0, (now - started).total_seconds()))
        idx = attempt.get("index", 0) + 1
        if attempt["result"] == AttemptResult.VERIFYING:
            verify = int((((svc or {}).get("spec") or {}).get("remediation") or {}).get("verifySeconds", 60))
            attempt["verifyBy"] = iso(now + timedelta(seconds=verify))
            plan.log(now, "remediation-acted", f"attempt {idx}: {attempt.get('message', 'done')}; verifying recovery")
            plan.wake_at(now + timedelta(seconds=verify))
            rem["phase"] = "Verifying"
        else:
            metrics.REMEDIATIONS.labels(action, attempt["result"].lower()).inc()
            plan.log(now, "remediation-failed", f"attempt {idx} {attempt['result'].lower()}: {attempt.get('message', '')}")
            rem["phase"] = "Failed"
            self._release(plan, inc, svc)
            self._announce_result(plan, inc, svc, attempt)
            plan.wake_at(now)  # the next decision (cooldown) comes from decide()
        rem["attempts"] = attempts
        plan.set(remediation=rem)

    def _verify(self, plan: Plan, inc: dict, svc: dict | None, attempts: list, rem: dict, attempt: dict,
                now: datetime) -> None:
        verify_by = parse_or_none(attempt.get("verifyBy")) or now
        recovered, how = self._recovered(inc, svc, attempt)
        idx = attempt.get("index", 0) + 1
        if recovered:
            attempt.update(result=AttemptResult.SUCCEEDED, message=how)
            rem["phase"] = "Succeeded"
            metrics.REMEDIATIONS.labels(attempt.get("action", "unknown"), "succeeded").inc()
            plan.log(now, "remediation-succeeded", f"attempt {idx} worked: {how}")
            if inc["spec"].get("state") in lifecycle.REMEDIABLE_STATES:
                plan.spec_patch = lifecycle.spec_patch({**plan.spec_patch.get("spec", {}), "state": State.MITIGATED},
                                                       "paramedic/remediation", how, now)
            self._release(plan, inc, svc)
            self._announce_result(plan, inc, svc, attempt)
        elif now >= verify_by:
            attempt.update(result=AttemptResult.FAILED,
                           message=f"{attempt.get('message', 'acted')}, but the service did not "
                                   f"recover before {iso(verify_by)}")
            rem["phase"] = "Failed"
            metrics.REMEDIATIONS.labels(attempt.get("action", "unknown"), "failed").inc()
            plan.log(now, "remediation-failed", f"attempt {idx}: the service did not recover in time")
            self._release(plan, inc, svc)
            self._announce_result(plan, inc, svc, attempt)
            plan.wake_at(now)
        else:
            plan.wake_at(verify_by)
            return
        rem["attempts"] = attempts
        plan.set(remediation=rem)

    def _recovered(self, inc: dict, svc: dict | None, attempt: dict) -> tuple[bool, str]:
        if not lifecycle.is_active(inc["spec"].get("state", State.OPEN)):
            return True, f"incident is {inc['spec'].get('state')}"
        alerts = (inc.get("status") or {}).get("alerts") or []
        if svc is not None and (svc.get("spec") or {}).get("probe"):
            health, last = self.rt.service_reconciler.health((svc["metadata"]["namespace"], svc["metadata"]["name"]))
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

    def _release(self, plan: Plan, inc: dict, svc: dict | None) -> None:
        if svc is None:
            return
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        name = inc["metadata"]["name"]

        async def release() -> None:
            current = await self.rt.client.get_or_none(kube.MONITORED_SERVICES, svc_name, ns)
            if current and ((current.get("status") or {}).get("remediation") or {}).get("inFlight") == name:
                await self.rt.client.patch(kube.MONITORED_SERVICES, svc_name,
                                           {"status": {"remediation": {"inFlight": None}}}, ns, subresource="status")
            # Incidents waiting for this service wait on no timer: a status-only change of the
            # service does not requeue them either.
            for other in self.rt.incidents.indexed((ns, svc_name)):
                other_state = (other.get("spec") or {}).get("state", State.OPEN)
                if other["metadata"]["name"] != name and lifecycle.is_active(other_state) and self.queue is not None:
                    self.queue.add((ns, other["metadata"]["name"]))

        plan.after_write.append(lambda: self.rt.effects.spawn(f"release:{ns}/{svc_name}:{name}:{time.monotonic_ns()}",
                                                              None, release()))

    def _announce_result(self, plan: Plan, inc: dict, svc: dict | None, attempt: dict) -> None:
        plan.announce(nr.notification_key("remediation", attempt.get("id", "")), "remediation",
                      f"{attempt.get('detail', attempt.get('action'))}: {attempt.get('result')} "
                      f"— {attempt.get('message', '')}",
                      self._recipients("remediation", inc["spec"].get("assignee", ""), svc))


CREATOR_GRACE_SECONDS = 3.0


def _awaiting_creator(inc: dict, now: datetime) -> float | None:
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


def _seconds_until(when: datetime, now: datetime) -> float:
    return max(0.0, (when - now).total_seconds()) + 0.05
