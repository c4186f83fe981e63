"""The notification outbox in status: each notification recorded pending before it is sent,
its deliveries' results recorded, and retries sent when due."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import notify_render as nr
from ..resources import mapping, sequence, text
from ..timeutil import iso, parse_or_none
from .base import NOTHING, Announcement, Delivery, Draft, Inputs, Part


def record_deliveries(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """Finished delivery rounds (in this process's memory) into their outbox entries."""
    d = Draft(status, inp.now, inp.settings.timeline_limit)
    entries = [dict(e) for e in sequence(d.status.get("notifications"))]
    taken: list[tuple[str, str]] = []
    for entry in list(entries):
        ref = (str(entry.get("key")), str(entry.get("channel")))
        if ref not in inp.effects.deliveries:
            continue
        # Dropped from memory only once the status holding it is written: a conflict
        # retries with the result still there, so nothing is sent twice.
        outcome = inp.effects.deliveries[ref]
        taken.append(ref)
        results = list(outcome) if not isinstance(outcome, BaseException) else [
            nr.DeliveryResult("email", list(sequence(entry.get("recipients"))), ok=False, error=str(outcome))]
        entries = _apply_outcome(d, entries, entry, results)
    if not taken:
        return NOTHING
    d.set(notifications=entries)
    return d.part(taken_deliveries=tuple(taken))


def queue(inp: Inputs, status: Mapping[str, Any], announcements: Sequence[Announcement]) -> Part:
    """Record each new notification as pending before sending: sent once per event.

    One that no channel could send (nothing configured in this pass's settings, nor on the
    service) is recorded as handled right away: a pending entry would only cost a second
    status write."""
    if not announcements:
        return NOTHING
    d = Draft(status, inp.now, inp.settings.timeline_limit)
    entries = [dict(e) for e in sequence(d.status.get("notifications"))]
    known = {e.get("key") for e in entries}
    hooks = inp.service_notify()
    settings = inp.settings
    for a in announcements:
        if a.key in known:
            continue
        known.add(a.key)
        entry = {"key": a.key, "event": a.event, "detail": a.detail[:2000], "channel": "pending",
                 "recipients": list(a.recipients), "time": iso(inp.now), "result": "pending", "attempts": 0}
        entries.append(entry)
        skipped = nr.unconfigured(list(a.recipients), settings.smtp_configured,
                                  bool(hooks.get("slackWebhookURL")) or settings.slack_configured,
                                  bool(hooks.get("webhookURL")) or settings.webhook_configured)
        if skipped is not None:
            for res in skipped:
                d.count("notifications_sent", res.channel, "skipped")
            entries = _apply_outcome(d, entries, entry, skipped)
    d.set(notifications=entries)
    return d.part()


def deliver_pending(inp: Inputs, status: Mapping[str, Any]) -> Part:
    """The sends due now: pending entries (all channels) and retries whose time came (their channel)."""
    now = inp.now
    hooks = inp.service_notify()
    wake: list[datetime | None] = []
    deliveries: list[Delivery] = []
    for entry in sequence(status.get("notifications")):
        result = entry.get("result")
        pending = result == "pending"
        retry = result == "retrying" and nr.needs_delivery([entry], entry["key"], entry["channel"], now)
        if not (pending or retry):
            if result == "retrying":
                wake.append(parse_or_none(entry.get("nextAttemptAt")))
            continue
        if pending and entry.get("event") == "opened":
            deadline = _first_evidence_deadline(inp, status, entry)
            if deadline is not None:
                wake.append(deadline)
                continue
        n = nr.notification_from_incident(inp.viewed(status), entry["event"], text(entry.get("detail")),
                                          list(sequence(entry.get("recipients"))), inp.settings.dashboard_url,
                                          inp.settings.console_url)
        deliveries.append(Delivery(entry["key"], text(entry.get("channel")), n,
                                   None if pending else frozenset({entry["channel"]}),
                                   text(hooks.get("slackWebhookURL")), text(hooks.get("webhookURL"))))
    return Part(wake=tuple(w for w in wake if w is not None), deliveries=tuple(deliveries))


def _first_evidence_deadline(inp: Inputs, status: Mapping[str, Any], entry: Mapping[str, Any]) -> datetime | None:
    """Until when the "opened" notification still waits for the incident's first evidence (then
    it names probable causes), or None. It waits a bounded time: the page matters more than its
    hints. The wait is from the entry's time in status, so a restarted operator keeps the same bound."""
    settings, now = inp.settings, inp.now
    if not (settings.evidence_enabled and settings.evidence_wait_seconds > 0 and inp.service_body is not None):
        return None
    if mapping(status.get("evidence")).get("gatheredAt"):
        return None
    deadline = (parse_or_none(entry.get("time")) or now) + timedelta(seconds=settings.evidence_wait_seconds)
    return deadline if now < deadline else None


def _apply_outcome(d: Draft, entries: list[dict[str, Any]], entry: dict[str, Any],
                   results: Sequence[nr.DeliveryResult]) -> list[dict[str, Any]]:
    """`entries` with one delivery round's results for `entry` merged in, and timeline lines for them."""
    if entry.get("channel") == "pending":
        # By key, not identity: an earlier outcome of this pass rebuilt `entries` from copies.
        entries = [e for e in entries if not (e.get("key") == entry.get("key") and e.get("channel") == "pending")]
    # Unconfigured channels are not worth a status entry each; keep one only
    # when nothing was configured at all, so the event still shows as handled.
    attempted = [r for r in results if not r.skipped] or list(results[:1])
    for res in attempted:
        entries = nr.record_delivery(entries, entry["key"], entry["event"], res, d.now)
        # carry the rendering inputs so a retry after a restart can render again
        for e in entries:
            if e.get("key") == entry["key"] and e.get("channel") == res.channel:
                e["detail"] = entry.get("detail", "")
        if not res.skipped:
            verb = "sent" if res.ok else "failed"
            d.status["notifications"] = entries
            d.log(f"notification-{verb}", f"{entry['event']} via {res.channel} to {', '.join(res.recipients) or '-'}"
                  + (f": {res.error}" if res.error else ""))
    return entries
