"""Recording alerts on an Incident: status.alerts entries, the timeline, and the bounds that keep it small.

`record_alerts` is idempotent (an alert key is recorded once; a resolution only
resolves), and its entries store labels as the difference from the incident's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .alert import FIRING, GRAFANA_LINKS, MAX_LABEL_VALUE, RESOLVED, Alert, stored_labels
from .lifecycle import append_timeline, timeline_entry
from .resources import Incident, mapping
from .text import cut
from .timeutil import iso, iso_ms

ACTOR = "paramedic/webhook"
"""Who the receiver's timeline entries and state changes name."""
MAX_ALERTS_PER_INCIDENT = 1000
"""Past this, the oldest resolved entries leave status.alerts (the object must stay small)."""
ALERTS_BYTES_BUDGET = 400_000
"""About how large status.alerts may grow: etcd refuses objects over 1.5 MB, and every write costs per byte."""


def incident_active(incident: Mapping[str, Any]) -> bool:
    return Incident(incident).active


def alert_keys(incident: Mapping[str, Any]) -> set[str]:
    return {a.get("key", "") for a in Incident(incident).alerts}


def alert_entry(alert: Alert, now: datetime, common: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The status.alerts entry of a newly recorded alert.

    Labels are stored as the difference from `common` (the incident's spec.labels):
    alerts of one group share most of theirs, and every status write carries every
    entry, so repeating them made large incidents' writes twice as costly.
    """
    common = common or {}
    entry: dict[str, Any] = {
        "key": alert.key,
        "alertname": cut(alert.alertname, MAX_LABEL_VALUE),
        "status": alert.status,
        "startsAt": iso_ms(alert.starts_at),
        "receivedAt": iso_ms(now),
    }
    summary = cut(alert.summary, 1024)
    if summary:
        entry["summary"] = summary
    labels = stored_labels(alert.labels)
    own = {k: v for k, v in labels.items() if common.get(k) != v}
    if own:
        entry["labels"] = own
    absent = sorted(k for k in common if k not in labels)
    if absent:
        entry["absentLabels"] = absent
    if alert.generator_url:
        entry["generatorURL"] = alert.generator_url
    entry.update(alert.links)
    if alert.status == RESOLVED:
        entry["resolvedAt"] = iso_ms(now)
        entry["endsAt"] = iso_ms(alert.ends_at or now)
    return entry


def entry_labels(incident: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, str]:
    """The full label set of a status.alerts entry (see `alert_entry`)."""
    absent = set(entry.get("absentLabels") or ())
    common = mapping(Incident(incident).spec.get("labels")) if "fingerprint" not in entry else {}
    labels = {k: v for k, v in common.items() if k not in absent}
    labels.update(entry.get("labels") or {})
    return labels


def entry_fingerprint(entry: Mapping[str, Any]) -> str:
    return entry.get("fingerprint") or str(entry.get("key", "")).partition("@")[0]


@dataclass
class Recorded:
    """What `record_alerts` changed: `patch` is None when nothing did (all duplicates)."""

    patch: dict[str, Any] | None
    added: list[str] = field(default_factory=list)           # keys newly recorded
    resolved: list[str] = field(default_factory=list)        # keys newly marked resolved
    duplicates: list[str] = field(default_factory=list)      # keys that changed nothing
    all_resolved: bool = False                                # every recorded alert is resolved now
    became_all_resolved: bool = False                         # ... and this write made it so


def record_alerts(incident: Mapping[str, Any], alerts: list[Alert], now: datetime, *,
                  timeline_limit: int, auto_resolve: bool = True, created: bool = False) -> Recorded:
    """The status merge patch that records `alerts` on `incident`, idempotently.

    An alert key is recorded once; a firing copy of a recorded alert changes
    nothing, and a resolved one only resolves it (never back). One timeline
    entry per change (or one summary entry for many). When this write resolves
    the last firing alert of an active incident, an "all alerts resolved"
    entry joins the timeline (`auto_resolve` only words it: the operator's planner, not the
    caller, moves spec.state).
    `created` sets status.createdAt for an incident created just now.
    """
    view = Incident(incident)
    status = view.status
    common = mapping(view.spec.get("labels"))
    current = [dict(a) for a in view.alerts]
    index = {a.get("key"): i for i, a in enumerate(current)}
    was_all_resolved = bool(current) and all(a.get("status") == RESOLVED for a in current)
    out = Recorded(patch=None)
    fired: list[Alert] = []
    cleared: list[Alert] = []
    for alert in alerts:
        i = index.get(alert.key)
        if i is None:
            current.append(alert_entry(alert, now, common))
            index[alert.key] = len(current) - 1
            out.added.append(alert.key)
            (fired if alert.status == FIRING else cleared).append(alert)
            if alert.status == RESOLVED:
                out.resolved.append(alert.key)
        elif alert.status == RESOLVED and current[i].get("status") != RESOLVED:
            current[i]["status"] = RESOLVED
            current[i]["resolvedAt"] = iso_ms(now)
            current[i]["endsAt"] = iso_ms(alert.ends_at or now)
            out.resolved.append(alert.key)
            cleared.append(alert)
        else:
            out.duplicates.append(alert.key)
    out.all_resolved = bool(current) and all(a.get("status") == RESOLVED for a in current)
    needs_created = not status.get("createdAt")
    if not out.added and not out.resolved and not needs_created:
        return out
    timeline: list[dict[str, Any]] = [dict(e) for e in view.timeline]
    for type_, batch, verb in (("alert-firing", fired, "firing"), ("alert-resolved", cleared, "resolved")):
        for message in _timeline_messages(batch, verb):
            timeline = append_timeline(timeline, timeline_entry(now, type_, ACTOR, message), timeline_limit)
    if out.all_resolved and not was_all_resolved and (out.resolved or out.added) and view.active:
        out.became_all_resolved = True
        note = "all alerts resolved" + ("" if auto_resolve else " (autoResolve is off: resolve it by hand)")
        timeline = append_timeline(timeline, timeline_entry(now, "alerts-resolved", ACTOR, note), timeline_limit)
    patch_status: dict[str, Any] = {"alerts": _bounded(current), "timeline": timeline}
    if needs_created:
        # An object created by an earlier, interrupted request lacks it: its creationTimestamp is the truth.
        stamp = None if created else view.created
        patch_status["createdAt"] = stamp or iso(now)
    out.patch = {"status": patch_status}
    return out


def _bounded(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """status.alerts kept within MAX_ALERTS_PER_INCIDENT entries and about ALERTS_BYTES_BUDGET bytes.

    The oldest entries shed their detail (labels, summary, URLs) first: their
    keys still deduplicate re-sends. Only then do the oldest resolved entries go.
    """
    out = _drop_resolved(entries, len(entries) - MAX_ALERTS_PER_INCIDENT)
    sizes = [_entry_size(e) for e in out]
    total = sum(sizes)
    if total <= ALERTS_BYTES_BUDGET:
        return out
    out = [dict(e) for e in out]
    for i, entry in enumerate(out):
        if total <= ALERTS_BYTES_BUDGET:
            break
        for name in ("labels", "absentLabels", "summary", "generatorURL", *GRAFANA_LINKS):
            entry.pop(name, None)
        slim = _entry_size(entry)
        total -= sizes[i] - slim
        sizes[i] = slim
    if total > ALERTS_BYTES_BUDGET:
        average = max(1, total // max(1, len(out)))
        out = _drop_resolved(out, (total - ALERTS_BYTES_BUDGET) // average + 1)
    return out


def _drop_resolved(entries: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    if count <= 0:
        return entries
    out = []
    for entry in entries:
        if count > 0 and entry.get("status") == RESOLVED:
            count -= 1
            continue
        out.append(entry)
    return out


def _entry_size(entry: Mapping[str, Any]) -> int:
    """Roughly the entry's JSON size (cheaper than serialising it)."""
    size = 2
    for name, value in entry.items():
        if isinstance(value, Mapping):
            size += len(name) + 5 + sum(len(k) + len(v) + 6 for k, v in value.items())
        else:
            size += len(name) + len(str(value)) + 6
    return size


MAX_VALUES_TEXT = 256
MAX_TIMELINE_NAME = 256
MAX_TIMELINE_TEXT = 512
"""A timeline entry names an alert and its summary's first line, cut: the timeline is kept
whole in one object, so its entries must stay small whatever an alert carries."""


def format_values(values: Mapping[str, float | None]) -> str:
    """`B=44.24, C=1`: a Grafana alert's values as its timeline entry shows them (bounded)."""
    parts = [f"{name}={'null' if v is None else format(v, '.6g')}" for name, v in values.items()]
    text = ", ".join(parts)
    return cut(text, MAX_VALUES_TEXT)


def _timeline_messages(alerts: list[Alert], verb: str) -> list[str]:
    if not alerts:
        return []

    def describe(a: Alert) -> str:
        # The fingerprint keeps entries of same-named alerts apart (equal entries are merged).
        name = f"{cut(a.alertname or a.service_hint, MAX_TIMELINE_NAME)} [{a.fingerprint}]"
        text = cut(a.summary.strip().splitlines()[0], MAX_TIMELINE_TEXT) if a.summary.strip() else ""
        line = f"{name}: {text}" if text else name
        values = format_values(a.values)
        return f"{line} ({values})" if values else line

    if len(alerts) <= 3:
        return [f"alert {verb}: {describe(a)}" for a in alerts]
    names = sorted({cut(a.alertname or a.service_hint, MAX_TIMELINE_NAME) for a in alerts})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"{len(alerts)} alerts {verb}: {shown}"]
