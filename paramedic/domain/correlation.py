"""The receiver's correlation decisions: which group an alert is in, which incident it joins (pure).

`paramedic.ingest` does the I/O: it reads (MonitoredServices, a window's incidents, the
active ones of a service), hands what it read to these functions, and writes what they
decide. The rules:

- Alerts are grouped by (namespace, service, severity). A group joins the newest active
  incident of its service and severity that is its kind (managed or not), else the
  incident named after the correlation window of its earliest firing alert (or a `-N`
  successor of it when that one is resolved or of the other kind).
- An alert already recorded somewhere goes back there (a duplicate, or its resolution).
- A resolution of a key no incident records is ignored (nothing to resolve), unless the key
  also fired in the same request (`Alert.fired_too`, set by `alert.dedupe`): then it opens or
  joins its incident as a firing alert would, and is recorded there resolved (`opens`); its
  outcome, for both copies, is "resolved", as for any alert this write recorded resolved.
- Managed (remediated) and unmanaged incidents of one service are kept apart: a group
  without the remediation right joins and changes unmanaged incidents only.
- Alerts a group may not write where they claim to belong are re-homed: recorded unmanaged
  in the token's home namespace as `<claimed namespace>/<service>`; refused there too,
  each alone in a minimal form (`alone_groups`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from . import scope as sc
from .alert import FIRING, RESOLVED, Alert, cut
from .alert_naming import correlation_bucket
from .alert_records import ACTOR, Recorded, alert_keys
from .alert_routing import incident_severity
from .lifecycle import append_timeline, timeline_entry
from .resources import Incident, Service
from .vocabulary import DNS_LABEL

GroupKey = tuple[str, str, str]
"""(namespace, service, severity): the alerts of one group share their incidents."""


class Outcome(StrEnum):
    """What became of one alert (the receiver's answer, per alert)."""

    RECORDED = "recorded"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass
class Group:
    """The alerts of one GroupKey and how they are recorded."""

    managed: bool
    service: dict[str, Any] | None
    alerts: list[Alert] = field(default_factory=list)
    claimed: str = ""     # re-homed: the namespace its alerts claim
    note: str = ""        # re-homed or unremediated: the timeline note saying why (written once)
    note_type: str = sc.REHOMED_TIMELINE_TYPE
    reason: str = ""      # re-homed: why (sc.REHOME_REASONS)

    @property
    def auto_resolve(self) -> bool:
        return bool(Service(self.service).spec.get("autoResolve", True)) if self.service is not None else True

    def like(self) -> Group:
        """An empty group recorded as this one is (unmanaged, without a service: re-homed groups)."""
        return Group(managed=False, service=None, claimed=self.claimed, note=self.note, note_type=self.note_type,
                     reason=self.reason)


def merged(groups: Mapping[GroupKey, Group], more: Mapping[GroupKey, Group]) -> dict[GroupKey, Group]:
    """`groups` with the alerts of `more` added, group by group (a new key takes `more`'s group's terms)."""
    out = dict(groups)
    for key, group in more.items():
        into = out.get(key) or group.like()
        out[key] = replace(into, alerts=into.alerts + group.alerts)
    return out


# --- grouping -------------------------------------------------------------------


def claimed_group(alert: Alert, namespace: str, service: dict[str, Any], scope: sc.Scope) -> tuple[GroupKey, Group]:
    """The group of an alert a MonitoredService of `namespace` claims. A token without the
    remediation right records it where it belongs, with its service (team, SLA, paging), but unmanaged."""
    key = (namespace, Service(service).name, incident_severity(alert, service))
    if scope.remediate:
        return key, Group(managed=True, service=service)
    return key, Group(managed=False, service=service, note=sc.unremediated_note(scope.name),
                      note_type=sc.UNREMEDIATED_TIMELINE_TYPE)


def unclaimed_group(alert: Alert, namespace: str) -> tuple[GroupKey, Group]:
    """The group of an alert no MonitoredService claims: unmanaged, named after its `service` label."""
    return (namespace, alert.service_hint, incident_severity(alert, None)), Group(managed=False, service=None)


def claimed_namespace(alert: Alert, scope: sc.Scope) -> str:
    return alert.namespace or scope.home


def rehome_reason(status: int) -> str:
    """Why a refused group goes home: the receiver may not write there (403), or another refusal."""
    return sc.REASON_FORBIDDEN if status == 403 else sc.REASON_REFUSED


def rehomed_groups(alerts: Iterable[Alert], reason: str, scope: sc.Scope,
                   detail: str = "") -> dict[GroupKey, Group]:
    """Groups recording `alerts` unmanaged in the home namespace, apart from its own incidents:
    their service is `<claimed namespace>/<service>`, which no MonitoredService can be named."""
    groups: dict[GroupKey, Group] = {}
    for alert in alerts:
        claimed = claimed_namespace(alert, scope)
        key = (scope.home, sc.rehomed_service(claimed, alert.service_hint), incident_severity(alert, None))
        group = groups.setdefault(key, Group(managed=False, service=None,
                                             claimed=claimed if DNS_LABEL.match(claimed) else "",
                                             note=sc.rehomed_note(claimed, reason, scope.name, detail),
                                             reason=reason))
        group.alerts.append(alert)
    return groups


def unroutable_service(alert: Alert) -> str:
    """One service per alert key: a re-send (or its resolution) finds the same incident; the
    `/` keeps it apart from every MonitoredService."""
    return f"unroutable/{hashlib.sha256(alert.key.encode('utf-8')).hexdigest()[:16]}"


def alone_groups(alerts: Iterable[Alert], scope: sc.Scope, detail: str) -> dict[GroupKey, Group]:
    """The last resort: each alert alone, in the home namespace, keeping only its key, status,
    times and (cut) name, so that no text of its own can make the API server refuse it."""
    groups: dict[GroupKey, Group] = {}
    for alert in alerts:
        name = cut(alert.alertname, 63)
        bare = replace(alert, labels={"alertname": name} if name else {}, annotations={}, generator_url="",
                       links={}, values={})
        groups[(scope.home, unroutable_service(alert), incident_severity(alert, None))] = Group(
            managed=False, service=None, alerts=[bare], reason=sc.REASON_REFUSED,
            note=sc.rehomed_note(claimed_namespace(alert, scope), sc.REASON_REFUSED, scope.name, detail))
    return groups


def fallback_keys(alert: Alert, scope: sc.Scope) -> list[GroupKey]:
    """The groups at home an alert refused where it belongs went to (`rehomed_groups`, then `alone_groups`)."""
    severity = incident_severity(alert, None)
    return [(scope.home, sc.rehomed_service(claimed_namespace(alert, scope), alert.service_hint), severity),
            (scope.home, unroutable_service(alert), severity)]


# --- joining --------------------------------------------------------------------


def may_join(incident: Mapping[str, Any], managed: bool) -> bool:
    """Whether new alerts of a group may join `incident`: managed and unmanaged incidents are apart."""
    return Incident(incident).managed == managed


def may_touch(incident: Mapping[str, Any], managed: bool) -> bool:
    """Whether a group may change alerts `incident` records: a managed group any incident of
    its service (its token may remediate), an unmanaged one only unmanaged incidents."""
    return managed or may_join(incident, managed)


@dataclass
class Known:
    """A group's alerts set against the active incidents of its service and severity."""

    active: list[dict[str, Any]]                                   # the group's kind, newest first
    seen: list[dict[str, Any]]                                     # every incident the group may touch
    held: list[tuple[dict[str, Any], Alert]] = field(default_factory=list)   # alerts one of them records
    pending: list[Alert] = field(default_factory=list)   # the others


def against_active(alerts: Iterable[Alert], active: Iterable[dict[str, Any]], managed: bool) -> Known:
    """Which alerts the active incidents already record; the rest are pending. After a burst of
    windows, new alerts join the latest incident: `active` comes newest first."""
    everything = list(active)
    mine = [o for o in everything if may_join(o, managed)]
    mine.sort(key=lambda o: (Incident(o).created, Incident(o).name), reverse=True)
    seen = mine + [o for o in everything if not may_join(o, managed) and may_touch(o, managed)]
    held_by: dict[str, dict[str, Any]] = {}
    for obj in seen:
        for k in alert_keys(obj):
            held_by.setdefault(k, obj)
    out = Known(active=mine, seen=seen)
    for alert in alerts:
        holder = held_by.get(alert.key)
        if holder is not None:
            out.held.append((holder, alert))
        else:
            out.pending.append(alert)
    return out


def opens(alert: Alert) -> bool:
    """Whether a pending alert (one no active incident records) may open or join an incident:
    a firing one, or a resolved one whose key fired in the same request (recorded resolved, so
    that the alert that fired is not lost). A resolution alone is ignored when found nowhere."""
    return alert.status == FIRING or alert.fired_too


def creation_bucket(pending: Sequence[Alert], any_active: bool, window: int) -> int | None:
    """With no active incident, the firing alerts (`opens`) of the earliest one's window go
    straight to creation (which reads that window's incidents only when the name is taken): that window."""
    firing = [a for a in pending if opens(a)]
    if not firing or any_active:
        return None
    return correlation_bucket(min(firing, key=lambda a: a.starts_at).starts_at, window)


def goes_to_creation(alert: Alert, bucket: int | None, window: int) -> bool:
    return opens(alert) and bucket == correlation_bucket(alert.starts_at, window)


class Look(Enum):
    """What one incident of an alert's window (or successor) says about where the alert is recorded."""

    HERE = "here"      # it records the alert
    NOWHERE = "none"   # no later successor can: stop looking
    NEXT = "next"      # look at the next successor


def successor_look(alert: Alert, incident: Mapping[str, Any] | None, managed: bool) -> Look:
    """Whether `incident` (None: no such name) records `alert`; successors exist only after a
    resolved (or other kind of) predecessor."""
    if incident is None:
        return Look.NOWHERE
    if alert.key in alert_keys(incident) and may_touch(incident, managed):
        return Look.HERE
    if Incident(incident).active and may_join(incident, managed):
        return Look.NOWHERE
    return Look.NEXT


def recorder(alert: Alert, incidents: Iterable[dict[str, Any]], managed: bool) -> dict[str, Any] | None:
    """Any incident of the service recording the alert, whatever its name or state: a firing
    alert may have joined an incident the probe opened and has since resolved."""
    for obj in incidents:
        if alert.key in alert_keys(obj) and may_touch(obj, managed):
            return obj
    return None


@dataclass
class WindowStep:
    """What the group's new firing alerts do at one name of their window (`window_step`)."""

    create: bool = False                                 # no such incident: create it with `remaining`
    held: list[Alert] = field(default_factory=list)      # re-sent alerts it records: duplicates there
    remaining: list[Alert] = field(default_factory=list)  # the alerts still to place
    join: bool = False                                   # it is active and the group's kind: `remaining` join it


def window_step(incident: Mapping[str, Any] | None, remaining: list[Alert], managed: bool) -> WindowStep:
    """At one name of the window: create it, or join it, or go on to its successor with what is left.
    Re-sent alerts of a resolved incident are duplicates there, never a new incident."""
    if incident is None:
        return WindowStep(create=True, remaining=remaining)
    if not may_join(incident, managed):
        return WindowStep(remaining=remaining)  # the name is taken by the other kind: a successor
    keys = alert_keys(incident)
    held = [a for a in remaining if a.key in keys]
    left = [a for a in remaining if a.key not in keys]
    return WindowStep(held=held, remaining=left, join=bool(left) and Incident(incident).active)


def resolved_meanwhile(joining: set[str], incident: Mapping[str, Any]) -> bool:
    """Whether new alerts sent to `incident` because it was active must go elsewhere: it was
    resolved meanwhile, and they belong to a successor (which a retry finds)."""
    return bool(joining - alert_keys(incident)) and not Incident(incident).active


# --- writing --------------------------------------------------------------------


def with_note(timeline: list[dict[str, Any]], incident: Mapping[str, Any], note: str, note_type: str,
              now: datetime, limit: int) -> list[dict[str, Any]]:
    """`timeline` with the group's note (why re-homed, why unmanaged), once per incident."""
    if not note or any(e.get("type") == note_type for e in Incident(incident).timeline):
        return timeline
    return append_timeline(timeline, timeline_entry(now, note_type, ACTOR, note), limit)


def outcomes(alerts: Iterable[Alert], rec: Recorded) -> list[tuple[Alert, Outcome]]:
    """What a status write did to each of `alerts`: newly resolved (also a key first recorded
    resolved: one that fired and resolved in the same request), newly recorded, or nothing (a duplicate)."""
    added, resolved = set(rec.added), set(rec.resolved)
    return [(a, Outcome.RESOLVED if a.key in resolved else Outcome.RECORDED if a.key in added else Outcome.DUPLICATE)
            for a in alerts]


def auto_resolves(alerts: Iterable[Alert], rec: Recorded, auto_resolve: bool, incident: Mapping[str, Any]) -> bool:
    """Whether this write's resolutions leave every alert of an active incident resolved, and its
    service lets the operator resolve it."""
    return (any(a.status == RESOLVED for a in alerts) and rec.all_resolved and auto_resolve
            and Incident(incident).active)
