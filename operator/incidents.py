"""Incident reconciliation: the executor of `paramedic.domain.incident_plan`.

It reads what the planner needs (the incident, its service and on-call schedule, what
this process knows of side effects), calls `plan`, and does what the Plan says and
nothing else: the guarded spec and status writes, the service's claim and its release,
background side effects (remediation runs, notification sends, Events) and metrics.

Every decision is written to the Incident's status (guarded by its resourceVersion)
before it is acted on, so a restarted operator resumes decisions instead of repeating
or skipping them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import timedelta
from typing import Any

from paramedic import evidence_io, kube, metrics, seal_io
from paramedic.domain import incident_plan, lifecycle, status_patch
from paramedic.domain.incident_plan import Effects, Plan, PlanSettings
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import IN_PROGRESS_RESULTS, AttemptResult, State
from paramedic.remediation_io import run_attempt

from .runtime import Key, Runtime
from .services import ServiceReconciler
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

_COUNTERS = {
    "incidents_created": metrics.INCIDENTS_CREATED,
    "sla_breaches": metrics.SLA_BREACHES,
    "escalations": metrics.ESCALATIONS,
    "remediations": metrics.REMEDIATIONS,
    "notifications_sent": metrics.NOTIFICATIONS_SENT,
}
_HISTOGRAMS = {
    "mtta": metrics.INCIDENT_MTTA,
    "mttr": metrics.INCIDENT_MTTR,
    "remediation_duration": metrics.REMEDIATION_DURATION,
}


class IncidentReconciler:
    def __init__(self, rt: Runtime, services: ServiceReconciler | None = None):
        self.rt = rt
        # The probes' view of a service's health (verification), and its per-incident state to forget.
        self.services = services
        from paramedic.notify import Notifier

        self.notifier = Notifier(rt.settings)
        self.queue: WorkQueue[Key] | None = None  # set by wiring.Operator
        s = rt.settings
        self.plan_settings = PlanSettings(
            timeline_limit=s.timeline_limit, retention_days=s.retention_days,
            remediation_enabled=s.remediation_enabled, admin_emails=tuple(s.admin_emails),
            dashboard_url=s.dashboard_url, console_url=s.console_url, smtp_configured=bool(s.smtp_host),
            slack_configured=s.has_secret("slack_webhook_url"),
            webhook_configured=s.has_secret("notify_webhook_url"),
            evidence_enabled=s.evidence_enabled, evidence_refresh_seconds=s.evidence_refresh_seconds,
            evidence_wait_seconds=s.notify_evidence_wait_seconds)
        self.evidence_slots = asyncio.Semaphore(max(1, s.evidence_concurrency))

    # --- the seal key ---------------------------------------------------------------------
    async def load_seal_key(self, first_delay: float = 1.0, max_delay: float = 60.0) -> None:
        """Load (or create) the key sealing remediation attempts, retrying until it is there;
        meanwhile remediation waits and says so in each incident's status. Then every active
        incident is looked at again."""
        ns = self.rt.settings.namespace
        loaded = await seal_io.load_retrying(self.rt.client, ns, first_delay=first_delay, max_delay=max_delay)
        self.plan_settings = dataclasses.replace(self.plan_settings, seal_key=loaded.key, sealed_since=loaded.since)
        log.info("remediation seal key loaded from Secret %s/%s", ns, seal_io.SECRET_NAME)
        if self.queue is not None:
            for inc in self.rt.incidents.values():
                self.queue.add((inc["metadata"].get("namespace", ""), inc["metadata"]["name"]))

    # --- reads --------------------------------------------------------------------------
    async def _service(self, ns: str, inc: dict) -> dict | None:
        name = inc["spec"].get("service", "")
        svc = self.rt.services.get((ns, name))
        # Right after a restart the incident watch may deliver before the services watch: ask
        # the API rather than mistake "not cached yet" for "gone". Unmanaged incidents too (a
        # token without the remediation right still pages the service's team); a re-homed
        # alert's "<namespace>/<service>" names no service here.
        if svc is None and name and "/" not in name:
            svc = await self.rt.client.get_or_none(kube.MONITORED_SERVICES, name, ns)
        return svc

    async def _schedule(self, ns: str, team: str) -> dict | None:
        schedule = self.rt.schedules.get((ns, team)) if team else None
        if team and schedule is None:
            # As for services: right after a start the schedules watch may lag behind.
            schedule = await self.rt.client.get_or_none(kube.ONCALL_SCHEDULES, team, ns)
        return schedule

    def _effects(self, inc: dict, svc: dict | None) -> Effects:
        """What this process knows of the incident's side effects (and, while an attempt is
        verified, its service's probe)."""
        fx, uid = self.rt.effects, _uid(inc)
        status = inc.get("status") or {}
        running: set[str] = set()
        results: dict[str, Any] = {}
        attempts = [a for a in (status.get("remediation") or {}).get("attempts") or [] if isinstance(a, dict)]
        # Each attempt under way, not only the last: an attempt someone else appended (which
        # the planner drops) must not hide the state of the operator's own.
        for attempt in attempts:
            if attempt.get("result") not in IN_PROGRESS_RESULTS:
                continue
            att_id = str(attempt.get("id"))
            key = _attempt_effect(uid, att_id)
            if fx.running(key):
                running.add(att_id)
            elif fx.has_result(key):
                results[att_id] = fx.peek(key)
        deliveries: dict[tuple[str, str], Any] = {}
        for entry in status.get("notifications") or []:
            ref = (str(entry.get("key")), str(entry.get("channel")))
            key = _notify_effect(uid, *ref)
            if fx.has_result(key):
                outcome = fx.peek(key)
                deliveries[ref] = outcome if isinstance(outcome, (list, BaseException)) else RuntimeError(str(outcome))
        probe = None
        verifying = bool(attempts) and attempts[-1].get("result") == AttemptResult.VERIFYING
        if verifying and svc is not None and (svc.get("spec") or {}).get("probe") \
                and self.services is not None:
            probe = self.services.health((svc["metadata"]["namespace"], svc["metadata"]["name"]))
        ev_key = _evidence_effect(uid)
        evidence = fx.peek(ev_key) if fx.has_result(ev_key) else None
        earlier = tuple(self.rt.incidents.indexed((inc["metadata"].get("namespace", ""), inc["spec"].get("service", ""))))
        return Effects(frozenset(running), results, deliveries, probe, evidence, fx.running(ev_key), earlier)

    # --- entry point ------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        inc = self.rt.incidents.get(key)
        if inc is None:
            return None
        ns, name = key
        now = utcnow()
        wait = incident_plan.awaiting_creator(inc, now)
        if wait:
            return wait
        svc = await self._service(ns, inc)
        schedule = await self._schedule(ns, incident_plan.team_of(inc, svc))
        plan = incident_plan.plan(inc, svc, schedule, self._effects(inc, svc), self.plan_settings, now)
        if plan.acts and svc is not None:
            # The cache may not show another incident's claim yet: plan again on the stored
            # service, whose resourceVersion then guards the claim (one remediation at a time).
            svc = await self.rt.client.get_or_none(kube.MONITORED_SERVICES, svc["metadata"]["name"], ns)
            plan = incident_plan.plan(inc, svc, schedule, self._effects(inc, svc), self.plan_settings, now)
        if plan.delete:
            await self.rt.client.delete(kube.INCIDENTS, name, ns)
            log.info("deleted %s/%s: closed longer than %d days", ns, name, self.rt.settings.retention_days)
            return None
        if plan.orphan_holder and svc is not None and await self._release_orphaned_claim(svc, plan.orphan_holder):
            plan.wake_at(now + timedelta(seconds=1))  # once the watch shows the freed service
        if plan.claim is not None and svc is not None:
            # A Conflict (someone wrote the service since it was read) fails this reconciliation
            # before anything is recorded; the retry decides again.
            await self.rt.client.patch(kube.MONITORED_SERVICES, svc["metadata"]["name"],
                                       {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                                        # the claim replaces status.remediation whole (null for what is gone)
                                        "status": status_patch.set_keys(svc.get("status"), {"remediation": plan.claim})},
                                       ns, subresource="status")
        try:
            await self._write_all(inc, plan)
        except kube.Conflict:
            return 0.0  # someone wrote in between: decide again at once on the fresh object
        self._after_write(inc, svc, plan)
        return plan.seconds_until_wake(now)

    async def _write_all(self, inc: dict, plan: Plan) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        written = inc
        spec_first = bool(plan.spec_patch) and "state" not in plan.spec_patch.get("spec", {})
        if spec_first:
            # An assignment goes first, guarded like the status: the status then records
            # the new generation as observed instead of costing a write of its own later.
            written = await self._write(inc, plan.spec_patch)
            plan.set(observedGeneration=written["metadata"].get("generation"))
        if plan.patch:
            written = await self._write(written, {"status": plan.patch}, subresource="status")
        if plan.spec_patch and not spec_first:
            # A state change follows the status that justifies it (a crash in between is redone).
            await self.rt.client.patch(kube.INCIDENTS, name, plan.spec_patch, ns)

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

    # --- after the write: side effects --------------------------------------------------
    def _after_write(self, inc: dict, svc: dict | None, plan: Plan) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        uid = _uid(inc)
        fx = self.rt.effects
        for m in plan.metrics:
            if m.name in _HISTOGRAMS:
                _HISTOGRAMS[m.name].labels(*m.labels).observe(m.value)
            else:
                _COUNTERS[m.name].labels(*m.labels).inc(m.value)
        for event in plan.events:
            fx.spawn(f"event:{inc['metadata'].get('uid')}:{event.id}", None,
                     self.rt.post_event(inc, event.reason, event.note, event.type))
        if plan.forget and self.services is not None:
            svc_key = (ns, inc["spec"].get("service", ""))
            fx.spawn(f"forget:{svc_key}:{name}", None, self.services.forget_incident(svc_key, name))
        for att_id in plan.taken_attempts:
            fx.take(_attempt_effect(uid, att_id))
        for ref in plan.taken_deliveries:
            fx.take(_notify_effect(uid, *ref))
        if plan.taken_evidence:
            fx.take(_evidence_effect(uid))
        if plan.gather_evidence and svc is not None:
            logs = ((svc.get("spec") or {}).get("evidence") or {}).get("logs") or {}
            fx.spawn(_evidence_effect(uid), (ns, name), evidence_io.gather(
                self.rt.client, ns, (svc.get("spec") or {}).get("target") or {}, utcnow(), self.evidence_slots,
                int(logs.get("tailLines") or 20) if logs.get("enabled") else 0))
        if plan.start_attempt is not None and svc is not None:
            attempt = plan.start_attempt
            fx.spawn(_attempt_effect(uid, str(attempt.get("id"))), (ns, name),
                     run_attempt(self.rt.client, self.rt.settings, inc, svc, attempt))
        if plan.release_claim and svc is not None:
            self._release(inc, svc)
        for d in plan.deliveries:
            fx.spawn(_notify_effect(uid, d.key, d.channel), (ns, name), self.notifier.deliver(
                d.notification, set(d.channels) if d.channels is not None else None,
                slack_url=d.slack_url, webhook_url=d.webhook_url))

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

    def _release(self, inc: dict, svc: dict) -> None:
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

        self.rt.effects.spawn(f"release:{ns}/{svc_name}:{name}:{time.monotonic_ns()}", None, release())


def _uid(inc: dict) -> str:
    return str(inc["metadata"].get("uid", inc["metadata"]["name"]))


def _attempt_effect(uid: str, attempt_id: str) -> str:
    return f"remediate:{uid}:{attempt_id}"


def _evidence_effect(uid: str) -> str:
    return f"evidence:{uid}"


def _notify_effect(uid: str, key: str, channel: str) -> str:
    return f"notify:{uid}:{key}:{channel}"
