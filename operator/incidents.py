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

import dataclasses
import logging
import time
from typing import Any, Protocol

from paramedic import evidence_io, kube, metrics, seal_io
from paramedic.domain import incident_plan, status_patch
from paramedic.domain.incident_plan import Effects, Plan, PlanSettings
from paramedic.domain.resources import Incident, Service, mapping, sequence
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import IN_PROGRESS_RESULTS
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


class IncidentApi(Protocol):
    """The API calls the executor makes itself (`paramedic.kube.AsyncKubeClient` has them; so has
    the unit tests' fake). Side effects (remediation runs, evidence, Events, the seal key) use
    the runtime's full client."""

    async def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None: ...

    async def patch(self, res: kube.Resource, name: str, patch: Any, namespace: str | None = None,
                    subresource: str | None = None) -> dict: ...

    async def delete(self, res: kube.Resource, name: str, namespace: str | None = None) -> None: ...


class IncidentReconciler:
    def __init__(self, rt: Runtime, services: ServiceReconciler | None = None, client: IncidentApi | None = None,
                 queue: WorkQueue[Key] | None = None):
        self.rt = rt
        self.client: IncidentApi = client if client is not None else rt.client
        # The probes' view of a service's health (verification), and its per-incident state to forget.
        self.services = services
        from paramedic.notify import Notifier

        self.notifier = Notifier(rt.settings)
        self.queue = queue  # incidents this one's outcome moves (others of its service)
        s = rt.settings
        # The notification channels are not here: read at each pass (`_settings`).
        self.plan_settings = PlanSettings(
            timeline_limit=s.timeline_limit, retention_days=s.retention_days,
            remediation_enabled=s.remediation_enabled, admin_emails=tuple(s.admin_emails),
            dashboard_url=s.dashboard_url, console_url=s.console_url,
            evidence_enabled=s.evidence_enabled, evidence_refresh_seconds=s.evidence_refresh_seconds,
            evidence_wait_seconds=s.notify_evidence_wait_seconds)
        # Shared by the incidents of one target that ask within a quarter of a refresh period.
        self.evidence = evidence_io.Gatherer(rt.client, s.evidence_concurrency, s.evidence_refresh_seconds / 4)

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
        name = Incident(inc).service
        svc = self.rt.services.get((ns, name))
        # Right after a restart the incident watch may deliver before the services watch: ask
        # the API rather than mistake "not cached yet" for "gone". Unmanaged incidents too (a
        # token without the remediation right still pages the service's team); a re-homed
        # alert's "<namespace>/<service>" names no service here.
        if svc is None and name and "/" not in name:
            svc = await self.client.get_or_none(kube.MONITORED_SERVICES, name, ns)
        return svc

    async def _schedule(self, ns: str, team: str) -> dict | None:
        schedule = self.rt.schedules.get((ns, team)) if team else None
        if team and schedule is None:
            # As for services: right after a start the schedules watch may lag behind.
            schedule = await self.client.get_or_none(kube.ONCALL_SCHEDULES, team, ns)
        return schedule

    def _effects(self, inc: dict, svc: dict | None) -> Effects:
        """What this process knows of the incident's side effects (and its service's probe)."""
        fx, uid, incident = self.rt.effects, _uid(inc), Incident(inc)
        running: set[str] = set()
        results: dict[str, Any] = {}
        # Each attempt under way, not only the last: an attempt someone else appended (which
        # the planner drops) must not hide the state of the operator's own.
        for attempt in incident.attempts:
            if not isinstance(attempt, dict) or attempt.get("result") not in IN_PROGRESS_RESULTS:
                continue
            att_id = str(attempt.get("id"))
            key = _attempt_effect(uid, att_id)
            if fx.running(key):
                running.add(att_id)
            elif fx.has_result(key):
                results[att_id] = fx.peek(key)
        deliveries: dict[tuple[str, str], Any] = {}
        for entry in sequence(incident.status.get("notifications")):
            ref = (str(mapping(entry).get("key")), str(mapping(entry).get("channel")))
            key = _notify_effect(uid, *ref)
            if fx.has_result(key):
                outcome = fx.peek(key)
                deliveries[ref] = outcome if isinstance(outcome, (list, BaseException)) else RuntimeError(str(outcome))
        probe = None
        service = Service(svc) if svc is not None else None
        if service is not None and service.probe and self.services is not None:
            # Verification and the "probe recovered" resolution read it, as the prober knows it now.
            probe = self.services.health((service.namespace, service.name))
        ev_key = _evidence_effect(uid)
        evidence = fx.peek(ev_key) if fx.has_result(ev_key) else None
        earlier = tuple(self.rt.incidents.indexed((incident.namespace, incident.service)))
        return Effects(frozenset(running), results, deliveries, probe, evidence, fx.running(ev_key), earlier)

    # --- entry point ------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        inc = self.rt.incidents.get(key)
        if inc is None or not self.rt.owns_incident(inc):
            return None  # gone, or another replica's (its service's shard)
        ns, name = key
        now = utcnow()
        svc = await self._service(ns, inc)
        schedule = await self._schedule(ns, incident_plan.team_of(inc, svc))
        settings = self._settings()
        plan = incident_plan.plan(inc, svc, schedule, self._effects(inc, svc), settings, now)
        if plan.acts and svc is not None:
            # The cache may not show another incident's claim yet: plan again on the stored
            # service, whose resourceVersion then guards the claim (one remediation at a time).
            svc = await self.client.get_or_none(kube.MONITORED_SERVICES, svc["metadata"]["name"], ns)
            plan = incident_plan.plan(inc, svc, schedule, self._effects(inc, svc), settings, now)
        if plan.delete:
            await self.client.delete(kube.INCIDENTS, name, ns)
            log.info("deleted %s/%s: closed longer than %d days", ns, name, self.rt.settings.retention_days)
            return None
        if not self.rt.owns_incident(inc):
            return None  # the fence: the shard moved while this pass read
        wake = plan.seconds_until_wake(now)
        if plan.orphan_holder and svc is not None and await self._release_orphaned_claim(svc, plan.orphan_holder):
            wake = min(1.0, wake) if wake is not None else 1.0  # once the watch shows the freed service
        if plan.claim is not None and svc is not None:
            try:
                await self.client.patch(kube.MONITORED_SERVICES, svc["metadata"]["name"],
                                        {"metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                                         # the claim replaces status.remediation whole (null for what is gone)
                                         "status": status_patch.set_keys(Service(svc).status,
                                                                         {"remediation": plan.claim})},
                                        ns, subresource="status")
            except kube.Conflict:
                # Someone wrote the service since it was read (its prober, a replica that held
                # the shard before): nothing is recorded yet, so decide again on the fresh one.
                return 0.2
        try:
            await self._write_all(inc, plan)
        except kube.Conflict:
            return 0.0  # someone wrote in between: decide again at once on the fresh object
        if not self.rt.owns_incident(inc):
            # Recorded but not started: the shard's next holder finds it in status and resumes it.
            log.warning("%s/%s: its shard moved between the write and the side effects", ns, name)
            return None
        self._after_write(inc, svc, plan)
        return wake

    def _settings(self) -> PlanSettings:
        """The planner's settings for this pass: the notification channels as configured now (a
        Slack or webhook URL in a mounted Secret may be added or removed while the operator runs)."""
        channels = self.notifier.configured()
        return dataclasses.replace(self.plan_settings, smtp_configured="email" in channels,
                                   slack_configured="slack" in channels, webhook_configured="webhook" in channels)

    async def _write_all(self, inc: dict, plan: Plan) -> None:
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        written = inc
        status = dict(plan.patch)
        spec_first = bool(plan.spec_patch) and "state" not in plan.spec_patch.get("spec", {})
        if spec_first:
            # An assignment goes first, guarded like the status: the status then records
            # the new generation as observed instead of costing a write of its own later.
            written = await self._write(inc, dict(plan.spec_patch))
            status["observedGeneration"] = written["metadata"].get("generation")
        if status:
            written = await self._write(written, {"status": status}, subresource="status")
        if plan.spec_patch and not spec_first:
            # A state change follows the status that justifies it (a crash in between is redone).
            try:
                await self.client.patch(kube.INCIDENTS, name, dict(plan.spec_patch), ns)
            except kube.Invalid as exc:
                # Someone moved it on meanwhile (closed it): the API server refuses going back, which
                # is right; the watch brings the incident back and the next pass decides on it.
                log.info("%s/%s: state not written: %s", ns, name, exc.message)

    async def _write(self, inc: dict, patch: dict, subresource: str | None = None) -> dict:
        """A merge patch guarded by the resourceVersion the decision was made on."""
        ns, name = inc["metadata"]["namespace"], inc["metadata"]["name"]
        body = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": inc["metadata"]["resourceVersion"]}}
        try:
            updated = await self.client.patch(kube.INCIDENTS, name, body, ns, subresource=subresource)
        except kube.Conflict:
            # Someone (the webhook, a person) wrote in between: re-read and decide again.
            fresh = await self.client.get_or_none(kube.INCIDENTS, name, ns)
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
            svc_key = (ns, Incident(inc).service)
            fx.spawn(f"forget:{svc_key}:{name}", None, self.services.forget_incident(svc_key, name))
        for att_id in plan.taken_attempts:
            fx.take(_attempt_effect(uid, att_id))
        for ref in plan.taken_deliveries:
            fx.take(_notify_effect(uid, *ref))
        if plan.taken_evidence:
            fx.take(_evidence_effect(uid))
        if plan.gather_evidence and svc is not None:
            logs = mapping(mapping(Service(svc).spec.get("evidence")).get("logs"))
            fx.spawn(_evidence_effect(uid), (ns, name), self.evidence.gather(
                ns, dict(Service(svc).target), int(logs.get("tailLines") or 20) if logs.get("enabled") else 0))
        if plan.start_attempt is not None and svc is not None:
            attempt = dict(plan.start_attempt)
            fx.spawn(_attempt_effect(uid, str(attempt.get("id"))), (ns, name),
                     run_attempt(self.rt.client, self.rt.settings, inc, svc, attempt,
                                 may_act=lambda: self.rt.owns_incident(inc)))
        if plan.release_claim and svc is not None:
            self._release(inc, svc)
        for d in plan.deliveries:
            fx.spawn(_notify_effect(uid, d.key, d.channel), (ns, name), self.notifier.deliver(
                dataclasses.replace(d.notification, delivery_id=f"{uid}.{d.key}"),
                set(d.channels) if d.channels is not None else None,
                slack_url=d.slack_url, webhook_url=d.webhook_url))

    async def _release_orphaned_claim(self, svc: dict, holder: str) -> bool:
        """Free the service when the incident holding it was deleted (nothing else ever would)."""
        ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        if await self.client.get_or_none(kube.INCIDENTS, holder, ns) is not None:
            return False
        try:
            await self.client.patch(kube.MONITORED_SERVICES, svc_name,
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
            current = await self.client.get_or_none(kube.MONITORED_SERVICES, svc_name, ns)
            if current and Service(current).remediation_status.get("inFlight") == name:
                await self.client.patch(kube.MONITORED_SERVICES, svc_name,
                                           {"status": {"remediation": {"inFlight": None}}}, ns, subresource="status")
            # Incidents waiting for this service wait on no timer: a status-only change of the
            # service does not requeue them either.
            for other in self.rt.incidents.indexed((ns, svc_name)):
                if other["metadata"]["name"] != name and Incident(other).active and self.queue is not None:
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
