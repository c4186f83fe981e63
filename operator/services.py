"""MonitoredService reconciliation and probe outcomes."""

from __future__ import annotations

import logging
from datetime import datetime

from paramedic import kube, metrics, netguard
from paramedic.domain import lifecycle, maintenance, status_patch
from paramedic.domain.probe import (
    UNKNOWN,
    ProbeResult,
    ProbeSpec,
    ProbeState,
    advance,
    in_maintenance,
    incident_name,
    incident_text,
    write_phase,
)
from paramedic.domain.resources import Service, mapping, sequence
from paramedic.domain.timeutil import utcnow

from .prober import Prober
from .runtime import Key, Runtime
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

def is_paused(body: dict) -> bool:
    return str(Service(body).annotations.get(lifecycle.PAUSED_ANNOTATION, "")).lower() == "true"


class ServiceReconciler:
    def __init__(self, rt: Runtime, incident_queue: WorkQueue[Key] | None = None):
        self.rt = rt
        s = rt.settings
        self.prober = Prober(self.on_probe_result, concurrency=s.probe_concurrency,
                             rules=netguard.policy(s, netguard.PROBE))
        self._states: dict[Key, ProbeState] = {}
        self.incident_queue = incident_queue  # incidents a probe result moves

    async def reconcile(self, key: Key) -> float | None:
        body = self.rt.services.get(key)
        if body is None or not self.rt.owns_service(key):
            # Gone, or another replica's now (its shard moved): probes stop here.
            self.prober.remove(key)
            self._states.pop(key, None)
            try:
                metrics.PROBE_SUCCESS.remove(*key)
            except KeyError:
                pass
            return None
        ns, name = key
        now = utcnow()
        svc = Service(body)
        status = svc.status
        gen = svc.meta.get("generation", 0)
        probe = ProbeSpec.from_service(body)
        paused = is_paused(body)
        if probe is None or paused:
            self.prober.remove(key)
        else:
            self.prober.upsert(key, probe)

        target = svc.target
        res = kube.WORKLOADS.get(target.get("kind", "Deployment"), kube.DEPLOYMENTS)
        found = await self.rt.client.get_or_none(res, target.get("name", ""), ns) is not None
        if paused:
            ready = ("False", "Paused", f"{lifecycle.PAUSED_ANNOTATION} is set: probes and remediation are stopped")
        elif not found:
            ready = ("False", "TargetNotFound", f"{target.get('kind', 'Deployment')} {target.get('name')} not found in {ns}")
        else:
            ready = ("True", "Monitoring" if probe else "AlertsOnly",
                     f"probing {probe.url} every {probe.interval:g}s" if probe else "driven by alerts (no probe)")
        before = list(sequence(status.get("conditions")))
        conditions = lifecycle.set_condition(before, "Ready", *ready, now=now, generation=gen)
        patch: dict = {}
        if conditions != before:
            patch["conditions"] = conditions
        if status.get("observedGeneration") != gen:
            patch["observedGeneration"] = gen
        if status.get("handledBy") != self.rt.shards.identity:
            patch["handledBy"] = self.rt.shards.identity
        if not status.get("health") and key not in self._states:  # the prober may already know better
            patch["health"] = UNKNOWN
        window = await self._maintenance(body, now)
        # status.maintenance replaced whole: null for what the window no longer states.
        window_patch = status_patch.set_keys(status, {"maintenance": window.status()})
        if status_patch.changes(status, window_patch):
            patch.update(window_patch)
        if patch and self.rt.owns_service(key):  # the fence: still ours after the reads
            await self.rt.client.patch(kube.MONITORED_SERVICES, name, {"status": patch}, ns, subresource="status")
        waits = [w for w in ((window.next_change - now).total_seconds() + 0.5 if window.next_change else None,
                             30.0 if not found and not paused else None) if w is not None]  # the target may appear
        return max(0.0, min(waits)) if waits else None

    async def _maintenance(self, body: dict, now: datetime) -> maintenance.State:
        ns_obj = await self.rt.client.get_or_none(kube.NAMESPACES, body["metadata"]["namespace"])
        ns_windows, errors = maintenance.namespace_windows(ns_obj)
        windows = list(sequence(mapping(Service(body).spec.get("maintenance")).get("windows")))
        return maintenance.state(windows, ns_windows, now, errors)

    def take_up(self, key: Key) -> None:
        """A service of a shard just gained: probing starts now, from the cache; its reconcile
        (queued too, a few API calls each) writes status.handledBy when its turn comes."""
        body = self.rt.services.get(key)
        if body is None or is_paused(body):
            return
        probe = ProbeSpec.from_service(body)
        if probe is not None:
            self.prober.upsert(key, probe)

    # --- probes --------------------------------------------------------------------
    async def on_probe_result(self, key: Key, spec: ProbeSpec, result: ProbeResult) -> None:
        body = self.rt.services.get(key)
        if body is None or not self.rt.owns_service(key):
            return  # the shard moved during the probe: its new holder probes again
        ns, name = key
        state = self._states.get(key) or ProbeState.from_status(body.get("status"))
        step = advance(state, result, spec, write_phase(f"{ns}/{name}"))
        metrics.PROBE_SUCCESS.labels(ns, name).set(1 if result.ok else 0)

        in_window = maintenance.active_until(body, result.time)
        step = in_maintenance(step, in_window is not None)
        new = step.state
        if new.outage_held and not state.outage_held:
            log.info("%s/%s is down during its maintenance window (until %s): no incident", ns, name, in_window)
        if step.open_incident:
            new = await self._open_incident(body, new, result, spec)
        if step.recovered and new.open_incident and Service(body).auto_resolve:
            # The outage is over: the next one opens a new incident. Resolving this one is the
            # incident planner's decision (`planning.opening.resolution`), from this probe result.
            new = _with_incident(new, "")
        self._states[key] = new
        if step.health_changed:
            kind = "Normal" if new.health == "Healthy" else "Warning"
            await self.rt.post_event(body, f"Health{new.health}",
                                     f"{name} is {new.health}: {result.error or 'probe succeeded'}", kind)
        if step.persist or new.open_incident != state.open_incident:
            # The prober's keys, each replaced whole (null for what is gone within lastProbe, ...).
            written = status_patch.set_keys(body.get("status"), new.to_status(result.time))
            await self.rt.client.patch(kube.MONITORED_SERVICES, name, {"status": written}, ns, subresource="status")
        if step.recovered or step.open_incident:
            self._poke_incident(ns, state.open_incident or new.open_incident)

    async def _open_incident(self, service: dict, state: ProbeState, result: ProbeResult, spec: ProbeSpec) -> ProbeState:
        from paramedic.ingest import build_incident

        ns, name = service["metadata"]["namespace"], service["metadata"]["name"]
        inc_name = incident_name(name, state.outage_count)
        title, description = incident_text(name, result, spec)
        svc = Service(service)
        body = build_incident(ns, inc_name, service=name, severity=svc.severity, title=title,
                              description=description, source="probe", managed=True, labels={},
                              runbook_url=str(svc.spec.get("runbookURL", "")), now=result.time)
        try:
            await self.rt.client.create(kube.INCIDENTS, body, namespace=ns)
            log.info("opened incident %s/%s: %s", ns, inc_name, title)
        except kube.Conflict:
            pass  # already opened for this outage (e.g. before a restart): adopt it
        return _with_incident(state, inc_name)

    def _poke_incident(self, ns: str, incident: str) -> None:
        if incident and self.incident_queue is not None:
            self.incident_queue.add((ns, incident))

    # --- used by the incident reconciler -----------------------------------------
    def health(self, key: Key) -> tuple[str, str]:
        """(health, time of the last probe) as this process knows it, else as status says."""
        state = self._states.get(key)
        if state is None:
            body = self.rt.services.get(key) or {}
            state = ProbeState.from_status(body.get("status"))
        return state.health, state.last_probe.get("time", "")

    async def forget_incident(self, key: Key, incident: str) -> None:
        """An incident this service opened is over: the next outage opens a new one."""
        state = self._states.get(key)
        body = self.rt.services.get(key)
        if body is None:
            return
        recorded = Service(body).open_incident
        if state is not None and state.open_incident == incident:
            self._states[key] = _with_incident(state, "")
        if recorded == incident:
            await self.rt.client.patch(kube.MONITORED_SERVICES, key[1], {"status": {"openIncident": None}}, key[0],
                                       subresource="status")


def _with_incident(state: ProbeState, incident: str) -> ProbeState:
    from dataclasses import replace

    return replace(state, open_incident=incident)
