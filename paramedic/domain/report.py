"""Markdown post-mortem of one Incident, from its spec and status alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .alert_records import entry_fingerprint
from .lifecycle import is_active, was_acknowledged
from .notify_render import safe_url
from .presentation import format_duration, seconds_and_words
from .resources import Incident, mapping, sequence
from .text import printable
from .timeutil import iso, parse_or_none

RCA_FIELDS = (
    ("rootCause", "Root cause"),
    ("contributingFactors", "Contributing factors"),
    ("correctiveActions", "Corrective actions"),
    ("preventionActions", "Prevention actions"),
)
NOT_WRITTEN = "_Not written yet._"


def escape_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, line breaks as <br>, `-` when empty."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return "<br>".join(text.split("\n"))


def _inline(value: Any) -> str:
    """One line of text (headings, list items): line breaks become spaces."""
    return " ".join(str(value or "").split())


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return lines


def _when(value: Any) -> str:
    """A recorded time as stored, or `-`."""
    return str(value) if value else "-"


def _duration(start: Any, end: Any) -> float | None:
    a, b = parse_or_none(start), parse_or_none(end)
    return None if a is None or b is None else max(0.0, (b - a).total_seconds())


def _summary(inc: Incident, now: datetime) -> list[str]:
    spec, status = inc.spec, inc.status
    created = status.get("createdAt") or inc.created
    end = status.get("resolvedAt") or status.get("closedAt")
    if end:
        duration = f"{format_duration(_duration(created, end))} (opened to resolved)"
    elif not is_active(inc.state):
        duration = "- (resolution time not recorded)"
    elif created:
        duration = f"{format_duration(_duration(created, iso(now)))} so far (not resolved)"
    else:
        duration = "-"
    rows = [
        ["Service", inc.service],
        ["Severity", inc.severity],
        ["Source", inc.source],
        ["State", inc.state],
        # The person's (spec), not the on-call the operator announced (status): as before the views.
        ["Assignee", spec.get("assignee") or "unassigned"],
        ["Team", inc.team],
        ["Opened", _when(created)],
        ["Acknowledged", _when(status.get("acknowledgedAt"))],
        ["Investigating", _when(status.get("investigatingAt"))],
        ["Mitigated", _when(status.get("mitigatedAt"))],
        ["Resolved", _when(status.get("resolvedAt"))],
        ["Closed", _when(status.get("closedAt"))],
        ["Duration", duration],
    ]
    if not inc.managed:
        rows.append(["Managed", "no (matched no MonitoredService; never remediated)"])
    return ["## Summary", ""] + _table(["Field", "Value"], rows)


def _impact(inc: Incident) -> list[str]:
    lines = ["## Impact", ""]
    description = str(inc.spec.get("description") or "").strip()
    lines.append(description if description else "_No description recorded._")
    facts = [f"Service `{_inline(inc.service)}` at severity **{_inline(inc.severity)}**."]
    if inc.alerts:
        facts.append(f"{len(inc.alerts)} alert(s) joined this incident.")
    if inc.escalation_level:
        facts.append(f"{inc.escalation_level} escalation step(s) taken before acknowledgement.")
    if inc.sla.get("breached"):
        facts.append("The SLA was breached.")
    labels = mapping(inc.spec.get("labels"))
    if labels:
        shown = ", ".join(f"`{_inline(k)}={_inline(v)}`" for k, v in sorted(labels.items()))
        facts.append(f"Labels: {shown}.")
    return lines + [""] + [f"- {f}" for f in facts]


def _timeline(inc: Incident) -> list[str]:
    entries = inc.timeline
    if not entries:
        return ["## Timeline", "", "_No timeline entries._"]
    rows = [[e.get("time"), e.get("type"), e.get("actor"), e.get("message")] for e in entries]
    return ["## Timeline", ""] + _table(["Time", "Event", "Actor", "Message"], rows)


def _alerts(inc: Incident) -> list[str]:
    alerts = inc.alerts
    if not alerts:
        return ["## Alerts", "", "_No alerts._"]
    rows = [[a.get("alertname"), a.get("status"), a.get("startsAt"), a.get("resolvedAt") or a.get("endsAt"),
             a.get("summary"), entry_fingerprint(a)] for a in alerts]
    return ["## Alerts", ""] + _table(["Alert", "Status", "Started", "Resolved", "Summary", "Fingerprint"], rows)


def _remediation(inc: Incident) -> list[str]:
    rem, attempts = inc.remediation, inc.attempts
    lines = ["## Remediation attempts", ""]
    if rem.get("phase"):
        lines += [f"Phase: **{_inline(rem['phase'])}**" + (f": {_inline(rem['message'])}" if rem.get("message") else ""), ""]
    if not attempts:
        return lines + ["_No remediation attempted._"]
    rows = []
    for n, a in enumerate(attempts, 1):
        action = a.get("action") or "-"
        if a.get("dryRun"):
            action += " (dry run)"
        detail = a.get("message") or a.get("detail")
        if a.get("rc") is not None:
            detail = f"{detail or ''} (rc {a['rc']})".strip()
        rows.append([n, action, a.get("startedAt"), a.get("finishedAt"), a.get("result"), detail])
    lines += _table(["#", "Action", "Started", "Finished", "Result", "Detail"], rows)
    tails = [(n, a["outputTail"]) for n, a in enumerate(attempts, 1) if a.get("outputTail")]
    for n, tail in tails:
        fence = "````" if "```" in tail else "```"
        lines += ["", f"Output of attempt {n} (tail):", "", fence, tail.rstrip("\n"), fence]
    return lines


def _notifications(inc: Incident) -> list[str]:
    notes = sequence(inc.status.get("notifications"))
    if not notes:
        return ["## Notifications", "", "_No notifications._"]
    rows = [[n.get("time"), n.get("event"), n.get("channel"), n.get("recipients"), n.get("result"),
             n.get("attempts"), n.get("error")] for n in notes]
    return ["## Notifications", ""] + _table(["Time", "Event", "Channel", "Recipients", "Result", "Attempts",
                                               "Error"], rows)


def _metrics(inc: Incident) -> list[str]:
    status, sla = inc.status, inc.sla

    def secs(field: str) -> str:
        return seconds_and_words(status.get(field)) or "-"

    def target(kind: str) -> str:
        minutes = sla.get(f"{kind}Minutes")
        if minutes is None:
            return "-"
        return f"{minutes} min, by {_when(sla.get(f'{kind}By'))}"

    def breached(kind: str) -> str:
        if f"{kind}By" not in sla:
            return "-"
        return "**yes**" if sla.get(f"{kind}Breached") else "no"

    rows: list[list[Any]] = [
        ["MTTA (time to acknowledge)",
         "not acknowledged" if was_acknowledged(status) is False else secs("mttaSeconds")],
        ["MTTR (time to resolve)", secs("mttrSeconds")],
        ["SLA acknowledge target", target("acknowledge")],
        ["SLA acknowledge breached", breached("acknowledge")],
        ["SLA resolve target", target("resolve")],
        ["SLA resolve breached", breached("resolve")],
        ["Escalation level", inc.escalation_level],
    ]
    return ["## Metrics", ""] + _table(["Metric", "Value"], rows)


def _rca(inc: Incident) -> list[str]:
    rca = inc.rca
    lines = ["## Root cause analysis"]
    for key, title in RCA_FIELDS:
        text = str(rca.get(key) or "").strip()
        lines += ["", f"### {title}", "", text if text else NOT_WRITTEN]
    return lines


def changes_line(rollout: Mapping[str, Any]) -> str:
    changes = "; ".join(rollout.get("changes") or [])
    return changes or ("no pod template change" if rollout.get("previousRevision") else "first revision")


def _context(inc: Incident) -> list[str]:
    status, hints = inc.status, inc.hints
    lines = ["## Probable causes", ""]
    if hints:
        lines += _table(["#", "Summary", "Suggested action", "Evidence"],
                        [[n, h.get("summary"), h.get("suggestedAction"), ", ".join(h.get("evidence") or [])]
                         for n, h in enumerate(hints, 1)])
    else:
        lines.append("_No probable cause found in the evidence._")
    seen = sequence(status.get("seenBefore"))
    lines += ["", "## Seen before", ""]
    if seen:
        lines += _table(["Incident", "Created", "State", "Root cause"],
                        [[i.get("name"), i.get("createdAt"), i.get("state"),
                          i.get("rootCause") or (f"probable: {i['probableCause']}" if i.get("probableCause")
                                                 else "not written")] for i in seen])
    else:
        lines.append("_No earlier incident of this service._")
    ev = mapping(status.get("evidence"))
    lines += ["", "## Evidence", ""]
    if not ev:
        return lines + ["_No evidence gathered._"]
    lines += [f"Target `{_inline(ev.get('target'))}`, last gathered {_when(ev.get('gatheredAt'))}.", ""]
    rollouts = ev.get("rollouts") or []
    if rollouts:
        lines += ["### Rollouts", ""] + _table(
            ["Ref", "Revision", "Created", "Changes"],
            [[r.get("ref"), str(r.get("revision")) + (" (current)" if r.get("current") else ""), r.get("time"),
              changes_line(r)] for r in rollouts]) + [""]
    containers = ev.get("containers") or []
    if containers:
        lines += ["### Containers", ""] + _table(
            ["Ref", "Ready", "Restarts", "State", "Reason", "Last termination", "Memory limit", "Node"],
            [[c.get("ref"), "yes" if c.get("ready") else "no", c.get("restarts"), c.get("state"), c.get("reason"),
              f"{c.get('lastReason')} (exit {c.get('lastExitCode')})" if c.get("lastReason") else "",
              c.get("memoryLimit"), c.get("node")] for c in containers]) + [""]
    events = ev.get("events") or []
    if events:
        lines += ["### Warning events", ""] + _table(
            ["Last seen", "Object", "Reason", "Count", "Message"],
            [[e.get("time"), e.get("object"), e.get("reason"), e.get("count"), e.get("message")] for e in events]) + [""]
    nodes = ev.get("nodes") or []
    if nodes:
        lines += ["### Nodes", ""] + _table(["Node", "Problems"], [[n.get("name"), ", ".join(n.get("problems") or [])
                                                                    or "Ready"] for n in nodes]) + [""]
    for lg in ev.get("logs") or []:
        text = str(lg.get("lines", ""))
        fence = "````" if "```" in text else "```"
        lines += [f"### Log of `{_inline(lg.get('pod'))}/{_inline(lg.get('container'))}`"
                  + (" (previous run)" if lg.get("previous") else ""), "", fence, text.rstrip("\n"), fence, ""]
    return lines[:-1] if lines[-1] == "" else lines


def _people(inc: Incident) -> list[str]:
    steps = inc.runbook_steps
    lines = ["## Runbook steps applied", ""]
    if steps:
        lines += _table(["Step", "Title", "By", "When", "Note"],
                        [[st.get("step"), st.get("title"), st.get("author"), st.get("time"), st.get("note")]
                         for st in steps])
    else:
        lines.append("_No runbook step marked applied._")
    comments = inc.comments
    lines += ["", "## Comments", ""]
    if comments:
        lines += _table(["When", "By", "Comment"], [[c.get("time"), c.get("author"), c.get("text")] for c in comments])
    else:
        lines.append("_No comments._")
    return lines


def render_postmortem(incident: Mapping[str, Any], now: datetime) -> str:
    """The post-mortem of `incident` as Markdown, generated at `now`: printable text (it is
    printed, saved and read in terminals), the runbook linked only when it is an http(s) URL."""
    inc = Incident(incident)
    ref = f"{inc.namespace}/{inc.name}".strip("/")
    runbook = inc.spec.get("runbookURL")
    link = safe_url(str(runbook or ""))
    parts = [
        [f"# Post-mortem: {_inline(inc.title or inc.name or 'incident')}", "",
         f"Incident `{ref}`, report generated {iso(now)}."],
        _summary(inc, now),
        _impact(inc),
        _timeline(inc),
        _alerts(inc),
        _context(inc),
        _remediation(inc),
        _people(inc),
        _notifications(inc),
        _metrics(inc),
        _rca(inc),
        ["## Runbook", "", f"<{link}>" if link else
         f"Not an http(s) link: `{_inline(runbook).replace('`', '')}`" if runbook else "_No runbook linked._"],
    ]
    return printable("\n\n".join("\n".join(p) for p in parts) + "\n")
