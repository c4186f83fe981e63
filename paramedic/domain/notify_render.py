"""What Paramedic says about an incident event, per channel, and when it tries again.

Pure: builds e-mail messages, Slack and generic webhook bodies from a `Notification`,
and keeps the bookkeeping of `status.notifications` (idempotency keys, retry schedule).
Delivery itself lives in `paramedic.notify`.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import jinja2

from paramedic.domain.resources import Incident, mapping, text
from paramedic.domain.text import BIDI_CONTROLS, cut, printable
from paramedic.domain.timeutil import iso, parse_or_none
from paramedic.domain.vocabulary import is_deliverable_email

EVENTS: tuple[str, ...] = ("opened", "escalated", "remediation", "sla_breach", "resolved", "closed")
CHANNELS: tuple[str, ...] = ("email", "slack", "webhook")

# Retry schedule across reconciliations: 30 s, 1 min, 2 min, ... capped at 15 min.
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 15 * 60
# Delivery rounds (calls to Notifier.deliver) before a notification is given up as failed.
MAX_DELIVERY_ROUNDS = 10

SUBJECT_LIMIT = 200
HEADER_LIMIT = 400
ERROR_LIMIT = 500
DETAIL_LIMIT = 8000
NOTIFICATIONS_LIMIT = 100  # entries kept in status.notifications

# Slack limits (https://api.slack.com/reference/block-kit/blocks).
_SLACK_HEADER_LIMIT = 150
_SLACK_SECTION_LIMIT = 3000
_SLACK_FIELD_LIMIT = 2000

# Anything a header must not carry: C0 controls (CR, LF, NUL, ...), DEL, C1, Unicode line
# breaks and bidi overrides (a subject that reads otherwise than it is).
_HEADER_BAD = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
# Not valid in a URL (RFC 3986) yet accepted by browsers, which encode them: `>` or `|` would
# end a Slack `<url|text>` link early, `"` an attribute.
_URL_UNSAFE = re.compile(r'[<>"|{}\\^`]')
_KEY_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Notification:
    """One incident event, addressed to people; channel-neutral."""

    event: str
    incident_name: str
    namespace: str
    service: str
    severity: str
    state: str
    title: str
    description: str = ""
    assignee: str = ""
    runbook_url: str = ""
    detail: str = ""
    recipients: list[str] = field(default_factory=list)
    dashboard_url: str = ""
    console_url: str = ""
    """Base URL of the web console; empty: no link to the incident's page."""
    hints: tuple[str, ...] = ()
    """Probable causes, most probable first (`status.hints` as one line each)."""
    delivery_id: str = ""
    """This page's identity (the incident's uid and the notification's key): the same page sent
    again, by a replica that took over before the first send was recorded, carries the same
    Message-ID, so mail systems show it once."""


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one delivery call on one channel (`attempts` counts tries within it)."""

    channel: str
    recipients: list[str]
    ok: bool
    error: str = ""
    attempts: int = 0
    skipped: bool = False
    refused: bool = False  # the outbound rules refuse the address: a later round would too

    @property
    def result(self) -> str:
        if self.skipped:
            return "skipped"
        return "sent" if self.ok else "failed"


# --- building ---------------------------------------------------------------------


HINTS_SHOWN = 3
"""Probable causes a notification carries."""


def notification_from_incident(incident: Mapping[str, Any], event: str, detail: str,
                               recipients: Sequence[str], dashboard_url: str = "",
                               console_url: str = "") -> Notification:
    """A Notification from an Incident body as the API server returns it."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; expected one of {', '.join(EVENTS)}")
    inc = Incident(incident)
    return Notification(
        event=event,
        incident_name=inc.name,
        namespace=inc.namespace,
        service=inc.service,
        severity=inc.severity,
        state=str(inc.state),
        title=inc.title,
        description=text(inc.spec.get("description")),
        assignee=text(inc.spec.get("assignee")),
        runbook_url=text(inc.spec.get("runbookURL")),
        detail=cut(str(detail or ""), DETAIL_LIMIT),
        recipients=list(recipients),
        dashboard_url=str(dashboard_url or ""),
        console_url=str(console_url or ""),
        hints=tuple(cut(f"{h.get('summary', '')} (suggested: {h.get('suggestedAction', '')})", DETAIL_LIMIT)
                    for h in inc.hints[:HINTS_SHOWN]
                    if isinstance(h, Mapping)),
    )


def unconfigured(recipients: Sequence[str], smtp_configured: bool, slack_configured: bool,
                 webhook_configured: bool) -> list[DeliveryResult] | None:
    """The `skipped` results a delivery would return when no channel could send anything, else
    None. `slack_configured`/`webhook_configured`: a URL globally or on the service."""
    if smtp_configured and any(isinstance(r, str) and is_deliverable_email(r.strip()) for r in recipients):
        return None
    if slack_configured or webhook_configured:
        return None
    email = ("SMTP not configured (PARAMEDIC_SMTP_HOST)" if not smtp_configured else "no recipients")
    return [DeliveryResult("email", [r.strip() for r in recipients if is_deliverable_email(r.strip())], ok=False,
                           error=email, attempts=0, skipped=True),
            DeliveryResult("slack", [], ok=False, error="slack webhook URL not configured", attempts=0, skipped=True),
            DeliveryResult("webhook", [], ok=False, error="webhook webhook URL not configured", attempts=0,
                           skipped=True)]


def recipients_for(event: str, assignee: str, service_admins: Iterable[str] | None,
                   global_admins: Iterable[str] | None, extra: Iterable[str] = ()) -> list[str]:
    """Who is told about `event`: the assignee, `extra` (e.g. an escalation target), the
    service's admins, then the global admins; deduplicated case-insensitively, order kept,
    empty or invalid addresses dropped. Every event goes to the same audience today;
    `event` is the hook for narrowing it."""
    del event
    out: list[str] = []
    seen: set[str] = set()
    for group in ([assignee], extra, service_admins or (), global_admins or ()):
        for raw in group:
            address = (raw or "").strip() if isinstance(raw, str) else ""
            if not is_deliverable_email(address) or address.lower() in seen:
                continue
            seen.add(address.lower())
            out.append(address)
    return out


def notification_key(event: str, discriminator: str = "") -> str:
    """The idempotency key of one event of one incident, stored in status.notifications.

    One key per event occurrence: `opened`, `escalated:2` (level), `remediation:<attempt id>`,
    `sla_breach:acknowledge`. The channel is recorded beside it, not in it.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; expected one of {', '.join(EVENTS)}")
    disc = _KEY_BAD.sub("-", str(discriminator)).strip("-")[:63]
    return f"{event}:{disc}" if disc else event


# --- rendering ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("paramedic", "templates"),
        # Escape in HTML templates only; text and subject stay verbatim.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["one_line"] = lambda value: sanitize_header(str(value), 1000)
    return env


def safe_url(url: str) -> str:
    """The URL if it is an http(s) link fit for an href, else empty (no javascript:, no spaces,
    no controls); `<>"|{}\\^`` percent-encoded, as a browser would, so no markup can end it."""
    url = (url or "").strip()
    if not re.match(r"^https?://[^\s]+$", url, re.IGNORECASE) or _HEADER_BAD.search(url):
        return ""
    return _URL_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", url)


def incident_page(n: Notification) -> str:
    """The incident's page in the web console (`<console_url>/ns/<ns>/incidents/<name>`), or empty
    when no console URL is set or it is not an http(s) URL."""
    base = safe_url(n.console_url)
    if not base or not n.namespace or not n.incident_name:
        return ""
    return safe_url(f"{base.rstrip('/')}/ns/{quote(n.namespace, safe='')}/incidents/{quote(n.incident_name, safe='')}")


def commands(n: Notification) -> dict[str, str]:
    return {verb: f"kubectl paramedic {verb} {n.incident_name} -n {n.namespace}"
            for verb in ("ack", "resolve", "report")}


def _context(n: Notification) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "n": n,
        "event": n.event,
        "runbook_url": safe_url(n.runbook_url),
        "dashboard_url": safe_url(n.dashboard_url),
        "incident_url": incident_page(n),
        "commands": commands(n),
    }
    ctx["headline"] = sanitize_header(_env().get_template("headline.txt.j2").render(ctx), SUBJECT_LIMIT)
    return ctx


def _template_event(event: str) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; expected one of {', '.join(EVENTS)}")
    return event


def headline(n: Notification) -> str:
    text: str = _context(n)["headline"]
    return text


def render_subject(n: Notification) -> str:
    ctx = _context(n)
    return sanitize_header(_env().get_template("subject.txt.j2").render(ctx), SUBJECT_LIMIT)


def render_text(n: Notification) -> str:
    # Plain text is read in terminals too (mutt, less): no escape sequences, controls or bidi.
    return printable(_env().get_template(f"{_template_event(n.event)}.txt.j2").render(_context(n)))


def render_html(n: Notification) -> str:
    # Autoescaped; printable too, so no bidi override reorders what a reader sees.
    return printable(_env().get_template(f"{_template_event(n.event)}.html.j2").render(_context(n)))


def sanitize_header(value: str, limit: int = HEADER_LIMIT) -> str:
    """One line, no control characters, at most `limit` characters: nothing a hostile title
    can use to start a header of its own."""
    # Whole escape sequences go (no `[2A` residue); other controls become spaces; split()
    # also breaks at U+2028/U+2029.
    text = " ".join(printable(value, keep_layout=False, replacement=" ").split())
    return cut(text, limit)


def render_email(n: Notification, sender: str) -> EmailMessage:
    """multipart/alternative (text, then HTML) with CRLF line ends, ready for SMTP.

    Recipients that are not plain addresses are dropped; ValueError when none is left or the
    sender has no valid address. Date and Message-ID are the sender's job (they need a clock).
    """
    recipients = [r.strip() for r in n.recipients if isinstance(r, str) and is_deliverable_email(r.strip())]
    if not recipients:
        raise ValueError("no valid recipient address")
    name, address = parseaddr(sanitize_header(sender, 254))
    if not is_deliverable_email(address):
        raise ValueError(f"invalid sender address {sender!r}")
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((sanitize_header(name, 78), address)) if name else address
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = render_subject(n)
    # RFC 3834: tells vacation responders not to answer.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Paramedic-Event"] = sanitize_header(n.event, 64)
    msg["X-Paramedic-Incident"] = sanitize_header(f"{n.namespace}/{n.incident_name}", 320)
    msg.set_content(render_text(n))
    msg.add_alternative(render_html(n), subtype="html")
    return msg


def sender_address(sender: str) -> str:
    """The envelope address of a From value such as `Paramedic <ops@example.com>`."""
    return parseaddr(sanitize_header(sender, 254))[1]


def _slack_escape(text: str) -> str:
    # Slack mrkdwn control characters; escaping < and > also defuses <!channel> mentions.
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    """`<url|label>` for an http(s) URL (`safe_url` leaves no `<`, `>` or `|` in it, and `&` is
    escaped as Slack asks), else the label alone."""
    url = safe_url(url)
    return f"<{_slack_escape(url)}|{_slack_escape(label)}>" if url else ""


def render_slack(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body: `text` as the notification fallback, plus blocks."""
    head = headline(n)
    runbook = _slack_link(n.runbook_url, "open runbook")
    dashboard = _slack_link(n.dashboard_url, "open dashboard")
    cmds = {verb: _slack_escape(c) for verb, c in commands(n).items()}
    fields = [
        f"*Incident*\n`{_slack_escape(f'{n.namespace}/{n.incident_name}')}`",
        f"*Service*\n{_slack_escape(n.service)}",
        f"*Severity*\n{_slack_escape(n.severity)}",
        f"*State*\n{_slack_escape(n.state)}",
        f"*Assignee*\n{_slack_escape(n.assignee) or 'unassigned'}",
        f"*Runbook*\n{runbook}" if runbook else "*Runbook*\nnone",
    ]
    if dashboard:
        fields.append(f"*Dashboard*\n{dashboard}")
    page = incident_page(n)
    if page:
        fields.insert(0, f"*Console*\n{_slack_link(page, 'open the incident')}")
    detail = _slack_escape(n.detail or "(no detail)")
    if n.hints:
        detail += "\n*Probable causes*\n" + "\n".join(f"• {_slack_escape(h)}" for h in n.hints)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(head, _SLACK_HEADER_LIMIT), "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(detail, _SLACK_SECTION_LIMIT)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": cut(f, _SLACK_FIELD_LIMIT)} for f in fields]},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"ack: `{cmds['ack']}`\nresolve: `{cmds['resolve']}`\nreport: `{cmds['report']}`"},
        ]},
    ]
    text = cut(_slack_escape(f"[{n.severity.upper()}] {head} ({n.namespace}/{n.incident_name})"),
                  _SLACK_SECTION_LIMIT)
    return {"text": text, "blocks": blocks}


def render_webhook(n: Notification) -> dict[str, Any]:
    """The generic JSON body: stable field names, everything a receiver needs to route."""
    return {
        "version": "paramedic.dev/v1alpha1",
        "event": n.event,
        "summary": headline(n),
        "incident": {
            "name": n.incident_name,
            "namespace": n.namespace,
            "service": n.service,
            "severity": n.severity,
            "state": n.state,
            "title": n.title,
            "description": n.description,
            "assignee": n.assignee,
            "runbookURL": n.runbook_url,
        },
        "detail": n.detail,
        "hints": list(n.hints),
        "recipients": list(n.recipients),
        "dashboardURL": n.dashboard_url,
        "incidentURL": incident_page(n),
        "commands": commands(n),
        # The same for every send of this page (a replica that took over may send it again).
        "deliveryId": n.delivery_id,
    }


# --- status.notifications bookkeeping ------------------------------------------------


def next_retry_at(attempts: int, now: datetime) -> datetime:
    """When to try again after `attempts` failed delivery rounds: 30 s, 1 min, 2 min, 4 min,
    8 min, then every 15 min."""
    exponent = max(0, attempts - 1)
    delay = RETRY_MAX_SECONDS if exponent >= 10 else min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** exponent)
    return now + timedelta(seconds=delay)


def retries_exhausted(attempts: int) -> bool:
    return attempts >= MAX_DELIVERY_ROUNDS


def find_entry(notifications: Sequence[Mapping[str, Any]] | None, key: str, channel: str) -> dict[str, Any] | None:
    for entry in notifications or ():
        if entry.get("key") == key and entry.get("channel") == channel:
            return dict(entry)
    return None


def needs_delivery(notifications: Sequence[Mapping[str, Any]] | None, key: str, channel: str, now: datetime) -> bool:
    """True when this key was never tried on this channel, or its retry is due.
    Sent, skipped and given-up entries are final: an event is delivered at most once."""
    entry = find_entry(notifications, key, channel)
    if entry is None:
        return True
    if entry.get("result") != "retrying":
        return False
    due = parse_or_none(entry.get("nextAttemptAt"))
    return due is None or due <= now


def due_retries(notifications: Sequence[Mapping[str, Any]] | None, now: datetime) -> list[dict[str, Any]]:
    """Entries whose retry time has come, oldest first as recorded."""
    return [dict(e) for e in notifications or ()
            if e.get("result") == "retrying" and needs_delivery([e], str(e.get("key")), str(e.get("channel")), now)]


def record_delivery(notifications: Sequence[Mapping[str, Any]] | None, key: str, event: str,
                    result: DeliveryResult, now: datetime, limit: int = NOTIFICATIONS_LIMIT) -> list[dict[str, Any]]:
    """status.notifications with the outcome of one delivery round merged in (one entry per
    key and channel). `attempts` there counts delivery rounds; failures become `retrying`
    with `nextAttemptAt` until MAX_DELIVERY_ROUNDS, then `failed`; one the outbound rules
    refused is `failed` at once (other permanent failures, such as a refused SMTP login, get
    their rounds: the admin may fix the setting meanwhile)."""
    entries = [dict(e) for e in notifications or ()]
    previous = find_entry(entries, key, result.channel)
    rounds = int(mapping(previous).get("attempts") or 0) + 1
    entry: dict[str, Any] = {
        "key": key,
        "event": event,
        "channel": result.channel,
        "recipients": list(result.recipients),
        "time": iso(now),
        "attempts": rounds,
    }
    if result.skipped:
        entry["result"] = "skipped"
    elif result.ok:
        entry["result"] = "sent"
    elif result.refused or retries_exhausted(rounds):
        entry["result"] = "failed"
    else:
        entry["result"] = "retrying"
        entry["nextAttemptAt"] = iso(next_retry_at(rounds, now))
    if result.error:
        entry["error"] = sanitize_header(result.error, ERROR_LIMIT)
    entries = [e for e in entries if not (e.get("key") == key and e.get("channel") == result.channel)]
    entries.append(entry)
    if len(entries) > limit:
        # Keep pending retries over old final entries when trimming.
        final = [e for e in entries if e.get("result") != "retrying"]
        drop = len(entries) - limit
        doomed = {id(e) for e in final[:drop]}
        entries = [e for e in entries if id(e) not in doomed][-limit:]
    return entries

