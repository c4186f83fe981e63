"""Create-or-join Incidents: the alert ingestion shared by the webhook (and the operator's body builder).

Every alert of a request ends up recorded on exactly one Incident (or, when it
is a resolution of an alert nobody recorded, counted and dropped). The rules:

- Alerts are grouped by (namespace, service, severity); a group joins the
  active incident of its service and severity (found with a field selector,
  read from the API server's watch cache but never older than this process's
  own writes), else the incident named deterministically after the correlation
  window of its earliest alert. Concurrent or repeated posts of one window therefore meet on
  one object: creation that answers 409 joins what the other request created.
- Receivers run as replicas: each one's view holds its own writes, not another's of a
  moment ago. So the two decisions that view could get wrong for good, opening an incident
  (none active in view) and dropping a resolution (recorded nowhere in view), are made on
  a consistent read; every other one is checked by a GET or a status write's resourceVersion.
- An alert key (fingerprint + startsAt) is recorded once. Status writes carry
  the resourceVersion read, so concurrent requests never overwrite each
  other's alerts: a 409 re-reads and retries, a bounded number of times.
- Resolved alerts never create incidents, unless the same request also carries the alert
  firing (`dedupe` marks it `fired_too`, `correlation.opens`). The receiver records facts only (each alert's
  status, resolvedAt, endsAt) and never writes spec.state: when all alerts of an incident
  are resolved and its service allows it, the operator's planner moves it to `resolved`
  (`domain.planning.opening.resolution`, the one writer of incident state).
- Managed (remediated) and unmanaged incidents of one service are kept apart: alerts of
  a token without the remediation right open and join unmanaged ones only, and never
  change a managed incident (a firing alert joined there would hold its remediation's
  verification open, a resolution would close it).
- One alert never fails the others: a group the API server refuses (any 4xx) is recorded
  unmanaged in the token's home namespace, then, if refused again, each of its alerts
  alone in a minimal form. Only an unreachable API server (or one refusing even that)
  fails the request.

The decisions (which group, which incident, re-homing, outcomes) are pure functions of
`domain.correlation`; this module reads, asks them, and writes. Everything goes through
the synchronous `KubeClient`; a 200 answer to the sender means every alert was persisted
(or, for a resolution nobody recorded, ignored).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import kube, metrics
from .domain import alert_naming as naming
from .domain import alert_records as records
from .domain import alert_routing as routing
from .domain import correlation as corr
from .domain import scope as sc
from .domain import status_patch
from .domain.alert import (
    FIRING,
    MAX_DESCRIPTION,
    MAX_LABELS,
    MAX_SERVICE,
    MAX_TITLE,
    MAX_URL,
    RESOLVED,
    SEVERITIES,
    Alert,
    cut,
    dedupe,
    stored_labels,
)
from .domain.correlation import Group, GroupKey, Outcome
from .domain.resources import Incident, Service
from .domain.timeutil import iso
from .domain.vocabulary import DNS_LABEL, State
from .informer import Directory
from .owners import PodOwners

log = logging.getLogger("paramedic.ingest")

WRITE_ATTEMPTS = 10
"""Status writes retried on 409 before the request gives up (and answers 503)."""
MAX_SUCCESSORS = 100
"""Most `-N` successors tried for one correlation window's name."""
GROUP_PARALLELISM = 8
"""Groups of one request written concurrently (each touches its own incidents)."""


class IngestConflict(Exception):
    """A write kept conflicting with concurrent writers (or its object vanished): try again later."""


class _Refused(Exception):
    """A group that can never be recorded where it was routed (not a transient conflict)."""


@dataclass
class IngestResult:
    """What one request changed; counts are of alerts unless said otherwise."""

    created: int = 0            # incidents created
    joined: int = 0             # firing alerts newly recorded on an incident (new or existing)
    deduplicated: int = 0       # alerts already recorded (re-sends, HA duplicates)
    resolved: int = 0           # resolved alerts newly recorded
    ignored: int = 0            # resolved alerts no incident holds: nothing to resolve
    auto_resolvable: int = 0    # incidents this request left with every alert resolved, their service's
                                # autoResolve on: the operator resolves them (the receiver never does)
    rehomed: int = 0            # alerts recorded in the token's home namespace instead of the one they claim
    unmanaged: int = 0          # alerts a MonitoredService claims, recorded unmanaged (token without remediate)
    incidents: list[str] = field(default_factory=list)   # "namespace/name" of every incident touched
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per alert key: {outcome, incident, managed[, rehomed, reason]}."""

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "joined": self.joined, "deduplicated": self.deduplicated,
                "resolved": self.resolved, "ignored": self.ignored, "autoResolvable": self.auto_resolvable,
                "rehomed": self.rehomed, "unmanaged": self.unmanaged, "incidents": sorted(set(self.incidents))}

    def outcome(self, alert: Alert) -> str | None:
        """The outcome of `alert` (an `Outcome`), None when nothing was decided for it."""
        found: str | None = self.outcomes.get(alert.key, {}).get("outcome")
        return found

    def outcome_of(self, alert: Alert) -> dict[str, Any]:
        """What became of `alert`, for the sender: its key and outcome, and where it is recorded."""
        found = self.outcomes.get(alert.key) or {"outcome": "unknown"}
        return {"key": alert.key, **found}

    def add(self, part: IngestResult) -> None:
        self.created += part.created
        self.joined += part.joined
        self.deduplicated += part.deduplicated
        self.resolved += part.resolved
        self.ignored += part.ignored
        self.auto_resolvable += part.auto_resolvable
        self.rehomed += part.rehomed
        self.unmanaged += part.unmanaged
        self.incidents.extend(part.incidents)
        self.outcomes.update(part.outcomes)


def build_incident(namespace: str, name: str, *, service: str, severity: str, title: str, description: str = "",
                   source: str, managed: bool = True, labels: Mapping[str, str] | None = None,
                   runbook_url: str = "", now: datetime) -> dict[str, Any]:
    """An Incident body ready to create.

    Its `status` (createdAt) is dropped by the API server on create (status is a
    subresource): the receiver writes it with the incident's first alerts.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    # Every field is cut (and marked) to the CRD's limits: an alert's text never makes the
    # API server refuse the incident that records it.
    spec: dict[str, Any] = {
        "service": cut(service, MAX_SERVICE),
        "severity": severity,
        "title": cut(title.strip() or f"{service} incident", MAX_TITLE),
        "source": source,
        "state": State.OPEN,
        "managed": managed,
    }
    if description:
        spec["description"] = cut(description, MAX_DESCRIPTION)
    if labels:
        spec["labels"] = stored_labels(labels, MAX_LABELS)
    if runbook_url and len(runbook_url) <= MAX_URL:
        spec["runbookURL"] = runbook_url
    return {
        "apiVersion": kube.API_VERSION,
        "kind": kube.INCIDENTS.kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "paramedic"},
        },
        "spec": spec,
        "status": {"createdAt": iso(now)},
    }


def everywhere(settings: Any) -> sc.Scope:
    """The scope of a caller trusted with every namespace and remediation (home: Paramedic's own);
    never a receiver token's (those come from webhook.auth)."""
    return sc.Scope("everywhere", settings.namespace, frozenset({settings.namespace}), everywhere=True,
                    remediate=True)


def ingest(client: kube.KubeClient, settings: Any, alerts: list[Alert], now: datetime, *,
           parallel: int = GROUP_PARALLELISM, services: Directory | None = None,
           owners: PodOwners | None = None, scope: sc.Scope | None = None,
           reads: kube.ReadFloor | None = None) -> IngestResult:
    """Persist `alerts`: create, join, deduplicate, record resolutions. Returns only once all are written.

    `scope` is what the sender's token may write (default: everything, with remediation):
    alerts claiming a namespace outside it, or one the receiver may not use (403), are
    recorded unmanaged in the scope's home namespace; without `scope.remediate`, alerts a
    MonitoredService claims are recorded unmanaged where they belong. A group the API
    server refuses (any 4xx) goes home, then each of its alerts alone in a minimal form,
    so one alert never blocks the others of its request (`IngestResult.outcomes` says
    what became of each). Groups touch disjoint incidents, so up to `parallel` of them are
    written at once. Raises kube.Unavailable (API server unreachable) or IngestConflict
    (writes kept conflicting); either way the sender should retry the whole request,
    which is safe: every step is idempotent. Without `owners`, alerts naming only a pod
    are not routed by the pod's owner. Raises kube.ApiError only when even the minimal
    record is refused in the home namespace (nothing can be recorded: retried until fixed).
    `reads` is the app's view of Incidents (lists from the watch cache, never older than
    its own writes); without it, this request's reads are quorum reads.
    """
    router = _Router(client, settings, services, owners, scope or everywhere(settings))
    writer = _Writer(client, settings, now, reads or kube.ReadFloor())
    unique = dedupe(alerts)
    total = writer.write_all(router.route(unique), router, parallel)
    writer.resolve_strays(router, unique, total)
    total.rehomed = router.rehomed
    for alert_key, reason in router.reasons.items():
        if alert_key in total.outcomes:
            total.outcomes[alert_key]["rehomed"] = reason
    return total


def _why(exc: Exception) -> str:
    if isinstance(exc, kube.ApiError):
        return f"{exc.status} {exc.reason}: {exc.message}" if exc.reason else f"{exc.status}: {exc.message}"
    return str(exc)


# --- internals -------------------------------------------------------------------


class _Router:
    """Which group (namespace, service, severity) each alert belongs to; at most one LIST per namespace.
    Reads here; the groups are `domain.correlation`'s."""

    def __init__(self, client: kube.KubeClient, settings: Any, directory: Directory | None = None,
                 owners: PodOwners | None = None, scope: sc.Scope | None = None):
        self.client = client
        self.settings = settings
        self.directory = directory
        self.owners = owners
        self.scope = scope or everywhere(settings)
        self.reasons: dict[str, str] = {}   # alert key → why it was recorded at home (first reason)
        self._rehomed: set[int] = set()     # the alerts (objects) re-homed, each counted once
        self._tables: dict[str, routing.RoutingTable] = {}
        self._namespaces: dict[str, bool] = {}

    @property
    def rehomed(self) -> int:
        return len(self._rehomed)

    def table(self, namespace: str) -> routing.RoutingTable:
        """The namespace's MonitoredServices, indexed for routing; read once per request. As fresh as
        the watch: a MonitoredService created a moment ago may miss this request, never a later one.
        From the informer, the index is rebuilt only when a MonitoredService changed."""
        if namespace not in self._tables:
            self._tables[namespace] = (
                self.directory.view(namespace, routing.RoutingTable) if self.directory is not None
                else routing.RoutingTable(self.client.list(kube.MONITORED_SERVICES, namespace, cached=True)))
        return self._tables[namespace]

    def namespace_exists(self, namespace: str) -> bool:
        if namespace in (self.settings.namespace, self.scope.home):
            return True
        if namespace not in self._namespaces:
            exists = False
            if DNS_LABEL.match(namespace):
                try:
                    exists = self.client.get_or_none(kube.NAMESPACES, namespace) is not None
                except kube.ApiError as exc:
                    # Without the right to read namespaces (403, or any other refusal), the
                    # token's home is the safe place.
                    log.warning("cannot check namespace %s (%s): using %s", namespace, exc.message,
                                self.scope.home)
            self._namespaces[namespace] = exists
        return self._namespaces[namespace]

    def route(self, alerts: list[Alert]) -> dict[GroupKey, Group]:
        groups: dict[GroupKey, Group] = {}
        foreign: dict[tuple[str, str], list[Alert]] = {}
        for alert in alerts:
            ns = corr.claimed_namespace(alert, self.scope)
            if DNS_LABEL.match(ns) and not self.scope.allows(ns):
                metrics.ALERTS_ROUTED.labels("rehomed").inc()
                foreign.setdefault((sc.REASON_OUT_OF_SCOPE, ""), []).append(alert)
                continue
            try:
                claim = self.claim(alert, ns) if DNS_LABEL.match(ns) else None
            except kube.ApiError as exc:
                # A namespace the receiver may not read (one Paramedic does not watch, 403) or
                # that the API server refuses otherwise: this alert goes home unmanaged, the
                # others of the request are not held up by it.
                log.warning("cannot read MonitoredServices of %s (%s): alert %s goes to %s", ns, exc.message,
                            alert.key, self.scope.home)
                metrics.ALERTS_ROUTED.labels("rehomed").inc()
                foreign.setdefault((corr.rehome_reason(exc.status), _why(exc) if exc.status != 403 else ""),
                                   []).append(alert)
                continue
            metrics.ALERTS_ROUTED.labels(_RULE_METRIC.get(claim.rule if claim else "", "none")).inc()
            if claim is not None:
                key, fresh = corr.claimed_group(alert, ns, claim.service, self.scope)
            else:
                key, fresh = corr.unclaimed_group(alert, ns if self.namespace_exists(ns) else self.scope.home)
            groups.setdefault(key, fresh).alerts.append(alert)
        for (reason, detail), batch in foreign.items():
            groups = corr.merged(groups, self.rehome(batch, reason, detail))
        return groups

    def rehome(self, alerts: list[Alert], reason: str, detail: str = "") -> dict[GroupKey, Group]:
        """`alerts` recorded unmanaged in the home namespace (`correlation.rehomed_groups`), counted once each."""
        claimed_counts: dict[str, int] = {}
        for alert in alerts:
            claimed = corr.claimed_namespace(alert, self.scope)
            claimed_counts[claimed] = claimed_counts.get(claimed, 0) + 1
            self.reasons.setdefault(alert.key, reason)
            self._rehomed.add(id(alert))
        for claimed, count in sorted(claimed_counts.items()):
            metrics.ALERTS_REHOMED.labels(reason).inc(count)
            log.info("%d alert(s) claiming namespace %s recorded unmanaged in %s (token %r, %s)", count,
                     claimed[:63], self.scope.home, self.scope.name, reason)
        return corr.rehomed_groups(alerts, reason, self.scope, detail)

    def alone(self, alerts: list[Alert], detail: str) -> dict[GroupKey, Group]:
        """Each alert alone and minimal in the home namespace (`correlation.alone_groups`)."""
        for alert in alerts:
            self.reasons.setdefault(alert.key, sc.REASON_REFUSED)
        log.warning("%d alert(s) recorded alone, minimal, in %s: %s", len(alerts), self.scope.home, detail[:300])
        return corr.alone_groups(alerts, self.scope, detail)

    def claim(self, alert: Alert, ns: str) -> routing.Claim | None:
        """The cheap rules first; the pod's owner is read only for alerts none of them claims."""
        services = self.table(ns)
        found = routing.claim(alert, services)
        if found is not None or self.owners is None:
            return found
        pod = routing.pod_to_look_up(alert, services)
        if pod is None:
            return None
        owner = self.owners.owner(ns, pod)  # ns is the alert's own namespace (pod_to_look_up requires one)
        return routing.claim(alert, services, pod_owner=owner.workload, pod_gone=not owner.exists)


_RULE_METRIC = {routing.CLAIM_SELECTOR: "selector", routing.CLAIM_SERVICE_LABEL: "service_label",
                routing.CLAIM_WORKLOAD_LABEL: "workload_label", routing.CLAIM_POD_OWNER: "pod_owner",
                routing.CLAIM_POD_NAME: "pod_name"}


class _Writer:
    """Writes a request's groups: each in a `_Run` (up to `parallel` at once); a refused group goes
    home, then alone (`domain.correlation`); resolutions nobody recorded are looked for at home."""

    def __init__(self, client: kube.KubeClient, settings: Any, now: datetime, reads: kube.ReadFloor):
        self.client, self.settings, self.now, self.reads = client, settings, now, reads

    def run(self) -> _Run:
        return _Run(self.client, self.settings, self.now, self.reads)

    def one(self, key: GroupKey, group: Group, home: str) -> tuple[IngestResult, list[Alert], Exception | None]:
        run = self.run()
        try:
            run.ingest_group(key, group)
            run.flush()
        except (kube.ApiError, _Refused) as exc:  # 5xx and 429 are kube.Unavailable: never here
            left = [a for a in group.alerts if a.key not in run.done]
            log.warning("cannot write incidents in %s (%s, service %s): its %d alert(s) go to %s", key[0],
                        _why(exc)[:300], key[1][:100], len(left), home)
            return run.result, left, exc
        return run.result, [], None

    def write_all(self, groups: dict[GroupKey, Group], router: _Router, parallel: int) -> IngestResult:
        total = IngestResult()
        passes = 0
        while groups:
            passes += 1
            items = sorted(groups.items(), key=lambda kv: kv[0])
            if len(items) <= 1 or parallel <= 1:
                outcomes = [self.one(k, g, router.scope.home) for k, g in items]
            else:
                with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="ingest") as pool:
                    outcomes = list(pool.map(lambda kv: self.one(kv[0], kv[1], router.scope.home), items))
            groups = {}
            for part, left, exc in outcomes:
                total.add(part)
                if exc is None or not left:
                    continue
                if passes == 1:
                    # Where it was routed, refused: recorded unmanaged at home, as the token's strays are.
                    status = exc.status if isinstance(exc, kube.ApiError) else 0
                    more = router.rehome(left, corr.rehome_reason(status), _why(exc))
                elif passes == 2:
                    # Refused at home too: each alert alone, with none of its own text but its name.
                    more = router.alone(left, _why(exc))
                else:
                    log.error("cannot record %d alert(s) even in minimal form in %s: %s", len(left),
                              router.scope.home, _why(exc))
                    if isinstance(exc, _Refused):
                        raise IngestConflict(str(exc)) from exc
                    raise exc
                groups = corr.merged(groups, more)
        return total

    def resolve_strays(self, router: _Router, alerts: list[Alert], total: IngestResult) -> None:
        """Resolutions that found nothing where they belong: their firing alert may have been
        refused there and recorded at home (re-homed, or alone), so they are looked for there
        too (a GET or two each; only resolutions nobody recorded pay it)."""
        for alert in alerts:
            if alert.status != RESOLVED or total.outcome(alert) != Outcome.IGNORED:
                continue
            for key in corr.fallback_keys(alert, router.scope):
                run = self.run()
                try:
                    run.ingest_group(key, Group(managed=False, service=None, alerts=[alert]))
                    run.flush()
                except (kube.ApiError, _Refused):
                    continue
                if run.result.outcome(alert) == Outcome.IGNORED:
                    continue
                total.ignored -= 1
                total.add(run.result)
                break


@dataclass
class _IncidentAlerts:
    """The alerts one incident receives in this request (one status write)."""

    namespace: str
    name: str
    obj: dict[str, Any]
    auto_resolve: bool
    created: bool = False
    group: Group | None = None
    alerts: list[Alert] = field(default_factory=list)
    joining: set[str] = field(default_factory=set)   # keys of new firing alerts sent here because it was active


class _Run:
    """One group's work: read its incidents, place its alerts (`domain.correlation`), create what is
    missing, then one status write per incident."""

    def __init__(self, client: kube.KubeClient, settings: Any, now: datetime, reads: kube.ReadFloor):
        self.client = client
        self.settings = settings
        self.now = now
        self.reads = reads
        self.status = _StatusWriter(client, now, reads, int(settings.timeline_limit))
        self.window = int(settings.correlation_window_seconds)
        self.result = IngestResult()
        self.done: set[str] = set()   # keys of the alerts recorded (or ignored) by now
        self.managed = False
        self._objects: dict[tuple[str, str], dict[str, Any] | None] = {}   # incidents read in this request
        self._targets: dict[tuple[str, str], _IncidentAlerts] = {}
        self._service_incidents: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._consistent: set[tuple[str, str]] = set()   # services whose incidents were read consistently

    # reads and placing --------------------------------------------------------
    def ingest_group(self, key: GroupKey, group: Group) -> None:
        ns, service, severity = key
        self.managed = group.managed
        consistent = not self.reads.params()  # a floor that has seen nothing reads consistently
        known = corr.against_active(group.alerts, self._active(ns, service, severity, self.reads), group.managed)
        if not known.active and not consistent and any(corr.opens(a) for a in known.pending):
            # About to open an incident: this app's view holds its own writes, not another replica's
            # of a moment ago, which may have opened one. One consistent read first (new incidents only).
            latest = kube.ReadFloor()
            known = corr.against_active(group.alerts, self._active(ns, service, severity, latest), group.managed)
            self._raise_floor(latest)
        for obj in known.seen:
            self._objects[(ns, Incident(obj).name)] = obj
        for holder, alert in known.held:
            self._target(ns, holder, group).alerts.append(alert)
        bucket = corr.creation_bucket(known.pending, bool(known.active), self.window)
        new_firing: list[Alert] = []
        for alert in known.pending:
            if corr.goes_to_creation(alert, bucket, self.window):
                new_firing.append(alert)
                continue
            found = self._holder(ns, service, severity, alert)
            if found is None and alert.status != FIRING:
                found = self._any_holder(ns, service, alert)
            if found is not None:
                self._target(ns, found, group).alerts.append(alert)
            elif corr.opens(alert):
                new_firing.append(alert)
            else:
                self.result.ignored += 1
                self.done.add(alert.key)
                self.result.outcomes[alert.key] = {"outcome": Outcome.IGNORED}
                log.info("resolved alert %s (%s) matches no incident of %s/%s: nothing to resolve",
                         alert.key, alert.alertname[:100], ns, service[:100])
        if not new_firing:
            return
        if known.active:
            self._join(ns, known.active[0], group, new_firing)
            return
        self._create_or_join(ns, service, severity, group, new_firing)

    def _active(self, ns: str, service: str, severity: str, floor: kube.ReadFloor) -> list[dict[str, Any]]:
        try:
            return self.client.list(kube.INCIDENTS, ns, field_selector=naming.active_field_selector(service, severity),
                                    floor=floor)
        except kube.ApiError as exc:
            if exc.status != 400:
                raise
            # An API server without CRD selectableFields (before 1.31) refuses the selector: filter here.
            items = self.client.list(kube.INCIDENTS, ns)
            return [o for o in items if Incident(o).spec.get("service") == service
                    and Incident(o).spec.get("severity") == severity and Incident(o).active]

    def _holder(self, ns: str, service: str, severity: str, alert: Alert) -> dict[str, Any] | None:
        """The incident of the alert's window (or a successor) that already records its key, if any."""
        for attempt in range(1, MAX_SUCCESSORS + 1):
            obj = self._read(ns, naming.incident_name(service, severity, alert.starts_at, self.window, attempt))
            look = corr.successor_look(alert, obj, self.managed)
            if look is corr.Look.HERE:
                return obj
            if look is corr.Look.NOWHERE:
                return None
        return None

    def _any_holder(self, ns: str, service: str, alert: Alert) -> dict[str, Any] | None:
        """Any incident of the service recording the alert (`correlation.recorder`). Costs one LIST
        per service and request, and only for resolutions found nowhere else."""
        key = (ns, service)
        if key not in self._service_incidents:
            if not self.reads.params():
                self._consistent.add(key)  # a floor that has seen nothing reads consistently already
            self._service_incidents[key] = self._service_list(ns, service, self.reads)
        obj = corr.recorder(alert, self._service_incidents[key], self.managed)
        if obj is None and key not in self._consistent:
            # This app's view holds its own writes, not another replica's of a moment ago: before a
            # resolution is dropped as recorded nowhere, one consistent read (rare: strays only).
            self._consistent.add(key)
            latest = kube.ReadFloor()
            self._service_incidents[key] = self._service_list(ns, service, latest)
            self._raise_floor(latest)
            obj = corr.recorder(alert, self._service_incidents[key], self.managed)
        if obj is not None:
            self._objects[(ns, Incident(obj).name)] = obj
        return obj

    def _raise_floor(self, latest: kube.ReadFloor) -> None:
        """The app's floor, no older than a consistent read (which learnt the revision it read at)."""
        self.reads.see({"metadata": {"resourceVersion": latest.params().get("resourceVersion", "")}})

    def _service_list(self, ns: str, service: str, floor: kube.ReadFloor) -> list[dict[str, Any]]:
        """Every incident of the service; a floor that has seen nothing makes it a consistent read."""
        return self.client.list(kube.INCIDENTS, ns, field_selector=naming.service_field_selector(service), floor=floor)

    def _join(self, ns: str, obj: dict[str, Any], group: Group, firing: list[Alert], created: bool = False) -> None:
        target = self._target(ns, obj, group)
        target.created = target.created or created
        target.alerts.extend(firing)
        target.joining.update(a.key for a in firing)

    def _create_or_join(self, ns: str, service: str, severity: str, group: Group, firing: list[Alert]) -> None:
        """Create the window's incident, or join it when a concurrent request did; successors when resolved."""
        first = min(firing, key=lambda a: a.starts_at)  # the earliest; among equals, the first sent
        remaining = list(firing)
        for attempt in range(1, MAX_SUCCESSORS + 1):
            name = naming.incident_name(service, severity, first.starts_at, self.window, attempt)
            obj = self._objects.get((ns, name))
            if obj is None:
                obj, created = self._create(ns, name, service, severity, group,
                                            min(remaining, key=lambda a: a.starts_at))
                if created:
                    self._join(ns, obj, group, remaining, created=True)
                    return
            step = corr.window_step(obj, remaining, group.managed)
            if step.held:
                self._target(ns, obj, group).alerts.extend(step.held)
            remaining = step.remaining
            if not remaining:
                return
            if step.join:
                self._join(ns, obj, group, remaining)
                return
        # Not a conflict that a retry resolves: these alerts are recorded elsewhere.
        raise _Refused(f"{MAX_SUCCESSORS} incidents of {service[:100]}/{severity} in one correlation window")

    def _create(self, ns: str, name: str, service: str, severity: str, group: Group,
                alert: Alert) -> tuple[dict[str, Any], bool]:
        """The incident of that name, and whether it was created now (else it was taken: read)."""
        body = self._body(ns, name, service, severity, group, alert)
        try:
            obj = self.client.create(kube.INCIDENTS, {k: v for k, v in body.items() if k != "status"}, ns)
        except kube.Conflict:
            taken = self.client.get_or_none(kube.INCIDENTS, name, ns)
            if taken is None:
                raise IngestConflict(f"incident {ns}/{name} was deleted while being created") from None
            self._objects[(ns, name)] = taken
            return taken, False
        self.reads.see(obj)
        self._objects[(ns, name)] = obj
        self.result.created += 1
        log.info("created incident %s/%s (%s, %s): %s", ns, name, service, severity, body["spec"]["title"])
        return obj, True

    def _body(self, ns: str, name: str, service: str, severity: str, group: Group, alert: Alert) -> dict[str, Any]:
        runbook = Service(group.service).spec.get("runbookURL", "") if group.service is not None else ""
        body = build_incident(
            ns, name, service=service, severity=severity, title=alert.title, description=alert.description,
            source=alert.source, managed=group.managed, labels=alert.labels,
            runbook_url=alert.runbook_url or runbook, now=self.now)
        if group.claimed:
            body["metadata"]["labels"][sc.CLAIMED_NAMESPACE_LABEL] = group.claimed
        return body

    def _read(self, ns: str, name: str) -> dict[str, Any] | None:
        if (ns, name) not in self._objects:
            self._objects[(ns, name)] = self.client.get_or_none(kube.INCIDENTS, name, ns)
        return self._objects[(ns, name)]

    def _target(self, ns: str, obj: dict[str, Any], group: Group) -> _IncidentAlerts:
        name = Incident(obj).name
        target = self._targets.get((ns, name))
        if target is None:
            target = self._targets[(ns, name)] = _IncidentAlerts(ns, name, obj, auto_resolve=group.auto_resolve,
                                                                 group=group)
        return target

    # writes --------------------------------------------------------------------
    def flush(self) -> None:
        """One status write per incident, in name order; then what the writes did, counted.
        spec.state is left alone: the operator resolves an incident whose alerts all are."""
        for key in sorted(self._targets):
            target = self._targets[key]
            obj, rec = self.status.write(target)
            self._count(target, rec, Incident(obj).managed)
            if corr.auto_resolves(target.alerts, rec, target.auto_resolve, obj):
                self.result.auto_resolvable += 1
                log.info("incident %s/%s: all alerts resolved, left to the operator to resolve",
                         target.namespace, target.name)

    def _count(self, target: _IncidentAlerts, rec: records.Recorded, managed: bool) -> None:
        where = f"{target.namespace}/{target.name}"
        claimed = target.group is not None and target.group.service is not None
        added = set(rec.added)
        for a, outcome in corr.outcomes(target.alerts, rec):
            self.result.outcomes[a.key] = {"outcome": outcome, "incident": where, "managed": managed}
            self.done.add(a.key)
            if a.key in added and not managed and claimed:
                self.result.unmanaged += 1
        self.result.joined += sum(1 for a in target.alerts if a.key in added and a.status == FIRING)
        self.result.resolved += len(rec.resolved)
        self.result.deduplicated += len(rec.duplicates)
        if rec.duplicates:
            metrics.ALERTS_DEDUPLICATED.inc(len(rec.duplicates))
        self.result.incidents.append(where)


class _StatusWriter:
    """Writes what `domain.alert_records` records: one status merge patch per incident, guarded by
    the resourceVersion read; a 409 re-reads and records again, a bounded number of times."""

    def __init__(self, client: kube.KubeClient, now: datetime, reads: kube.ReadFloor, timeline_limit: int):
        self.client, self.now, self.reads, self.limit = client, now, reads, timeline_limit

    def write(self, target: _IncidentAlerts) -> tuple[dict[str, Any], records.Recorded]:
        """The incident as written (or as read, when nothing changed) and what the write recorded."""
        obj = target.obj
        for attempt in range(WRITE_ATTEMPTS):
            rec = records.record_alerts(obj, target.alerts, self.now, timeline_limit=self.limit,
                                        auto_resolve=target.auto_resolve, created=target.created)
            if rec.patch is None:
                return obj, rec
            if target.group is not None:
                rec.patch["status"]["timeline"] = corr.with_note(
                    rec.patch["status"]["timeline"], obj, target.group.note, target.group.note_type, self.now,
                    self.limit)
            # The record's keys, each replaced whole: null for what is gone within them.
            patch = {"metadata": {"resourceVersion": Incident(obj).resource_version},
                     "status": status_patch.set_keys(Incident(obj).status, rec.patch["status"])}
            try:
                obj = self.client.patch(kube.INCIDENTS, target.name, patch, target.namespace, subresource="status")
                self.reads.see(obj)
                return obj, rec
            except kube.Conflict:
                # Someone else wrote in between (another request, the operator): re-read, redo,
                # after a short random pause so that writers in lockstep drift apart.
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                fresh = self.client.get_or_none(kube.INCIDENTS, target.name, target.namespace)
                if fresh is None:
                    raise IngestConflict(f"incident {target.namespace}/{target.name} was deleted meanwhile") from None
                obj = fresh
                if corr.resolved_meanwhile(target.joining, obj):
                    raise IngestConflict(f"incident {target.namespace}/{target.name} was resolved meanwhile") from None
        raise IngestConflict(f"status of incident {target.namespace}/{target.name} kept changing "
                             f"({WRITE_ATTEMPTS} conflicting writes)")


__all__ = ["IngestConflict", "IngestResult", "build_incident", "ingest"]
