"""`kubectl paramedic`: the people's side of incidents, as a kubectl plugin.

Installed as the `kubectl-paramedic` console script, so kubectl finds it on
PATH. It talks to the API server through `paramedic.kube` with the user's own
kubeconfig and RBAC. State changes are JSON merge patches of spec.state; the
API server's CEL rules refuse illegal moves and their message is shown as is.

Exit codes: 0 done, 1 refused or not found, 2 usage error, 3 cluster unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import yaml

from . import entries_io, kube
from .domain import entries, maintenance, presentation, report, sla
from .domain.lifecycle import spec_patch
from .domain.presentation import on_call, seconds_and_words, short_age
from .domain.report import render_postmortem
from .domain.resources import Incident, Schedule, Service, mapping, sequence
from .domain.stats import compute_stats, render_stats_table
from .domain.text import is_printable, printable
from .domain.timeutil import iso, iso_ms, parse_or_none, utcnow
from .domain.vocabulary import DEFAULT_SEVERITY, SEVERITIES, STATES, State, is_email
from .settings import Settings, SettingsError

STATE_COMMANDS = {"ack": State.ACKNOWLEDGED, "investigate": State.INVESTIGATING, "mitigate": State.MITIGATED,
                  "resolve": State.RESOLVED, "close": State.CLOSED}
RCA_OPTIONS = (("root_cause", "rootCause"), ("contributing_factors", "contributingFactors"),
               ("corrective_actions", "correctiveActions"), ("prevention_actions", "preventionActions"))
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class CliError(Exception):
    """Shown on stderr as `error: ...`; `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


# --- time and tables ---------------------------------------------------------------------

human_age = short_age
"""kubectl's short duration (`presentation.short_age`)."""


def parse_window(text: str) -> timedelta | None:
    """`7d`, `12h`, `90m`, `2w`, `1d12h`; `all` or `0` for no window."""
    value = text.strip().lower()
    if value in ("all", "0", ""):
        return None
    parts = re.findall(r"(\d+)([smhdw])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise argparse.ArgumentTypeError(f"invalid window {text!r}: use e.g. 7d, 12h, 30m, 2w or 1d12h")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    return sum((timedelta(**{unit[u]: int(n)}) for n, u in parts), timedelta())


def table(header: list[str], rows: list[list[str]]) -> str:
    """kubectl-style columns: left-aligned, three spaces apart."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [header] + rows]
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Safe YAML; the vocabulary's str-valued enums (`State.OPEN`) as their plain values."""


_Dumper.add_multi_representer(StrEnum, lambda d, v: d.represent_str(str(v.value)))


def dump(obj: Any, fmt: str) -> str:
    """JSON or YAML; values holding control characters or bidi overrides come out escaped
    (all of non-ASCII then too), so the data survives `PrintableStream` intact."""
    if fmt == "json":
        text = json.dumps(obj, indent=2, ensure_ascii=False)
        return (text if is_printable(text) else json.dumps(obj, indent=2, ensure_ascii=True)) + "\n"
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return text if is_printable(text) else yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=False)


def as_list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}


class PrintableStream:
    """What the CLI prints goes through here: incident titles, actors, log lines and event
    messages come from CRs and alerts, and a terminal must show them, not obey them
    (`domain.text.printable`: no ESC sequences, C0/C1 controls or bidi overrides)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding: the real stream's
        return getattr(self._stream, name)


# --- connection ----------------------------------------------------------------------------

class Session:
    """What every command needs: parsed args, settings, a client, the namespace, the clock."""

    def __init__(self, args: argparse.Namespace, settings: Settings):
        self.args = args
        self.settings = settings
        self.kubeconfig = args.kubeconfig or settings.kubeconfig
        self.now = utcnow()
        self._client: kube.KubeClient | None = None
        self.namespace = args.namespace or default_namespace(self.kubeconfig, args.context)

    @property
    def client(self) -> kube.KubeClient:
        if self._client is None:
            try:
                conn = kube.Connection.load(self.kubeconfig, self.args.context)
            except Exception as exc:  # the loaders raise several unrelated types
                raise CliError(f"cannot load the kubeconfig: {exc}", EXIT_UNREACHABLE) from exc
            self._client = kube.KubeClient(conn, timeout=self.settings.api_timeout_seconds)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def scope(self) -> str | None:
        """Namespace to list in, None for all."""
        return None if self.args.all_namespaces else self.namespace

    def one_namespace(self) -> str:
        if self.args.all_namespaces:
            raise CliError("a resource cannot be retrieved by name across all namespaces", EXIT_USAGE)
        return self.namespace

    def get_incident(self, name: str) -> dict:
        return self.client.get(kube.INCIDENTS, name, self.one_namespace())

    def actor(self) -> str:
        """Who is acting: the API server's view of the user, else the kubeconfig user, else the login."""
        try:
            name = self.client.user_name()
            if name:
                return name
        except (kube.ApiError, kube.Unavailable):
            pass
        return kubeconfig_user(self.kubeconfig, self.args.context) or getpass.getuser()


def _context(kubeconfig: str, context: str | None) -> dict:
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig or None)
    except Exception:  # no kubeconfig at all is fine here: in-cluster or defaults apply
        return {}
    if context:
        current = next((c for c in contexts if c.get("name") == context), None)
    return dict(mapping(mapping(current).get("context")))


def default_namespace(kubeconfig: str, context: str | None) -> str:
    """The context's namespace, else the pod's (in-cluster), else `default`."""
    ns = _context(kubeconfig, context).get("namespace")
    if not ns and os.path.exists(SA_NAMESPACE_FILE):
        ns = Path(SA_NAMESPACE_FILE).read_text().strip()
    return ns or "default"


def kubeconfig_user(kubeconfig: str, context: str | None) -> str | None:
    return _context(kubeconfig, context).get("user")


# --- incidents -----------------------------------------------------------------------------

def sla_left(inc: dict, now: datetime) -> str:
    """Time to the next SLA deadline, `breached` once one passed, `-` when no clock runs."""
    left = presentation.sla_left(inc, now)
    return left.text(short_age) if left.active else "-"


def age(obj: dict, now: datetime) -> str:
    created = parse_or_none(Incident(obj).created)
    return "<unknown>" if created is None else human_age((now - created).total_seconds())


def cmd_list(s: Session) -> None:
    items = s.client.list(kube.INCIDENTS, s.scope())
    if s.args.state:
        items = [i for i in items if Incident(i).state == s.args.state]
    if s.args.active:
        items = [i for i in items if Incident(i).active]
    items.sort(key=lambda i: (i["metadata"].get("creationTimestamp", ""), i["metadata"]["name"]), reverse=True)
    if s.args.output != "table":
        print(dump(as_list(items), s.args.output), end="")
        return
    if not items:
        where = "any namespace" if s.args.all_namespaces else f"{s.namespace} namespace"
        print(f"No incidents found in {where}.", file=sys.stderr)
        return
    header = ["NAME", "STATE", "SEVERITY", "SERVICE", "ASSIGNEE", "AGE", "SLA LEFT"]
    rows = []
    for inc in items:
        view = Incident(inc)
        rows.append([view.name, view.state, view.severity, view.service, view.spec.get("assignee") or "<none>",
                     age(inc, s.now), sla_left(inc, s.now)])
    if s.args.all_namespaces:
        header = ["NAMESPACE"] + header
        rows = [[i["metadata"]["namespace"]] + r for i, r in zip(items, rows, strict=True)]
    print(table(header, rows), end="")


def describe(inc: dict, now: datetime) -> str:
    """A `kubectl describe`-like view of one incident."""
    view = Incident(inc)
    meta, spec, status = view.meta, view.spec, view.status
    rows: list[tuple[str, Any]] = [
        ("Name", meta.get("name")), ("Namespace", meta.get("namespace")), ("Title", spec.get("title")),
        ("Service", spec.get("service")), ("Severity", spec.get("severity")), ("State", view.state),
        ("Source", spec.get("source")), ("Assignee", spec.get("assignee") or "<none>"),
        ("Team", status.get("team")), ("Age", age(inc, now)),
    ]
    for label, field in (("Created", "createdAt"), ("Acknowledged", "acknowledgedAt"),
                         ("Investigating", "investigatingAt"), ("Mitigated", "mitigatedAt"),
                         ("Resolved", "resolvedAt"), ("Closed", "closedAt")):
        rows.append((label, status.get(field)))
    rows += [("MTTA", _secs(status.get("mttaSeconds"))), ("MTTR", _secs(status.get("mttrSeconds")))]
    deadlines = mapping(status.get("sla"))
    for kind in sla.KINDS:
        if deadlines.get(f"{kind}By"):
            flag = " (breached)" if deadlines.get(f"{kind}Breached") else ""
            rows.append((f"SLA {kind}", f"{deadlines.get(f'{kind}Minutes')} min, by {deadlines[f'{kind}By']}{flag}"))
    rows.append(("SLA left", sla_left(inc, now)))
    rows.append(("Escalation level", status.get("escalationLevel")))
    rem = view.remediation
    if rem:
        rows.append(("Remediation", f"{rem.get('phase', '-')}, {len(rem.get('attempts') or [])} attempt(s)"
                     + (f": {rem['message']}" if rem.get("message") else "")))
    alerts = status.get("alerts") or []
    if alerts:
        firing = sum(1 for a in alerts if a.get("status") == "firing")
        rows.append(("Alerts", f"{len(alerts)} ({firing} firing)"))
    rows.append(("Runbook", spec.get("runbookURL")))
    rca = mapping(spec.get("rca"))
    rows.append(("Root cause", rca.get("rootCause") or "<not written>"))
    shown = [(k, v) for k, v in rows if v not in (None, "")]
    width = max(len(k) for k, _ in shown) + 2
    out = [f"{(k + ':').ljust(width)}{_indent(str(v), width)}" for k, v in shown]
    if spec.get("description"):
        out += ["Description:", "  " + _indent(spec["description"], 2)]
    out += context_lines(status)
    timeline = status.get("timeline") or []
    if timeline:
        out.append(f"Timeline (last {min(10, len(timeline))} of {len(timeline)}):")
        rows_t = [[e.get("time", ""), e.get("type", ""), e.get("actor", ""),
                   " ".join(str(e.get("message", "")).split())] for e in timeline[-10:]]
        out += ["  " + line for line in table(["TIME", "TYPE", "ACTOR", "MESSAGE"], rows_t).splitlines()]
    return "\n".join(out) + "\n"


def context_lines(status: Mapping[str, Any]) -> list[str]:
    """Probable causes and the evidence they rest on, for `show`."""
    out: list[str] = []
    hints = status.get("hints") or []
    if hints:
        out.append("Probable causes:")
        for n, h in enumerate(hints, 1):
            out.append(f"  {n}. {' '.join(str(h.get('summary', '')).split())}")
            out.append(f"     suggested: {h.get('suggestedAction', '-')}; evidence: {', '.join(h.get('evidence') or [])}")
    seen = status.get("seenBefore") or []
    if seen:
        out.append("Seen before:")
        for item in seen:
            cause = item.get("rootCause") or (f"probable: {item['probableCause']}" if item.get("probableCause")
                                              else "no root cause written")
            out.append(f"  {item.get('name')} ({item.get('createdAt')}, {item.get('state')}): {cause}")
    ev = mapping(status.get("evidence"))
    if not ev:
        return out
    out.append(f"Evidence ({ev.get('target', '-')}, gathered {ev.get('gatheredAt', '-')}"
               + (f"; last gathering failed: {ev['error']}" if ev.get("error") else "") + "):")
    for r in ev.get("rollouts") or []:
        changes = report.changes_line(r)
        out.append(f"  rollout {r.get('revision')}{' (current)' if r.get('current') else ''} at {r.get('time', '-')}: "
                   f"{changes}")
    rows = [[c.get("pod", ""), c.get("container", ""), "yes" if c.get("ready") else "no", str(c.get("restarts", 0)),
             c.get("state", ""), c.get("reason") or "-",
             f"{c.get('lastReason')} ({c.get('lastExitCode')})" if c.get("lastReason") else "-",
             c.get("memoryLimit") or "-", c.get("node") or "-"] for c in ev.get("containers") or []]
    if rows:
        header = ["POD", "CONTAINER", "READY", "RESTARTS", "STATE", "REASON", "LAST EXIT", "MEM LIMIT", "NODE"]
        out += ["  " + line for line in table(header, rows).splitlines()]
    for e in ev.get("events") or []:
        out.append(f"  event {e.get('time', '-')} {e.get('object', '')} {e.get('reason', '')} (x{e.get('count', 1)}): "
                   f"{' '.join(str(e.get('message', '')).split())}")
    for n in ev.get("nodes") or []:
        out.append(f"  node {n.get('name')}: {', '.join(n.get('problems') or []) or 'Ready'}")
    for lg in ev.get("logs") or []:
        out.append(f"  log of {lg.get('pod')}/{lg.get('container')}{' (previous run)' if lg.get('previous') else ''}:")
        out += ["    " + line for line in str(lg.get("lines", "")).splitlines()]
    return out


def _secs(value: Any) -> str | None:
    return seconds_and_words(value, short_age)


def _indent(text: str, width: int) -> str:
    return ("\n" + " " * width).join(text.splitlines() or [""])


def cmd_show(s: Session) -> None:
    inc = s.get_incident(s.args.name)
    print(dump(inc, s.args.output) if s.args.output != "table" else describe(inc, s.now), end="")


def patch_incident(s: Session, name: str, spec: dict, reason: str | None = None) -> dict:
    """One merge patch: the spec change plus who made it (and why), for the operator's timeline."""
    return s.client.patch(kube.INCIDENTS, name, spec_patch(spec, s.actor(), reason, utcnow()), s.one_namespace())


def cmd_state(s: Session) -> None:
    target = STATE_COMMANDS[s.args.command]
    name = s.args.name
    current = Incident(s.get_incident(name)).state
    if current == target:
        print(f"incident.paramedic.dev/{name} is already {target}")
        return
    patch_incident(s, name, {"state": target}, s.args.reason)
    print(f"incident.paramedic.dev/{name} {target} (was {current})")


def append_to_spec(s: Session, name: str, field: str, entry: dict) -> dict:
    """Append `entry` to the incident's spec list `field` (see `entries_io.append`)."""
    try:
        return entries_io.append(s.client, s.one_namespace(), name, field, lambda _inc: entry)
    except entries_io.KeptChanging as exc:
        raise CliError(str(exc)) from None


def cmd_comment(s: Session) -> None:
    try:
        entry = entries.comment_entry(s.actor(), s.now, s.args.text)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    append_to_spec(s, s.args.name, entries.COMMENTS, entry)
    print(f"incident.paramedic.dev/{s.args.name} commented as {entry['author']}")


runbook_view = entries.runbook_view


def _service_of(s: Session, inc: dict) -> dict | None:
    view = Incident(inc)
    return s.client.get_or_none(kube.MONITORED_SERVICES, view.service, view.namespace) if view.service else None


def cmd_runbook(s: Session) -> None:
    inc = s.get_incident(s.args.name)
    svc = _service_of(s, inc)
    view = runbook_view(inc, svc)
    if s.args.output != "table":
        print(dump({"incident": s.args.name, "steps": view}, s.args.output), end="")
        return
    if not view:
        print(f"MonitoredService {inc['spec'].get('service', '?')} declares no runbook steps (spec.runbook.steps)")
        return
    for v in view:
        state = f"applied by {v['appliedBy']} at {v['appliedAt']}" if v["state"] == "applied" else "pending"
        print(f"{v['step']}. [{'x' if v['state'] == 'applied' else ' '}] {v['title']}  ({state})")
        for label in ("text", "link", "command", "note"):
            if v.get(label):
                shown = f"$ {v[label]}   (shown only: Paramedic never runs it)" if label == "command" else v[label]
                print(f"     {label}: {_indent(shown, 11)}")


def cmd_step(s: Session) -> None:
    inc = s.get_incident(s.args.name)
    view = runbook_view(inc, _service_of(s, inc))
    try:
        entry = entries.step_entry(view, s.args.n, s.actor(), s.now, s.args.note or "",
                                   Incident(inc).service or "?")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    append_to_spec(s, s.args.name, entries.RUNBOOK_STEPS, entry)
    print(f"incident.paramedic.dev/{s.args.name} step {s.args.n} ({entry['title']}) applied by {entry['author']}")


def cmd_maintain(s: Session) -> None:
    """Add a one-off maintenance window to a service (with --for), or show its windows."""
    name, ns = s.args.service, s.one_namespace()
    for _ in range(5):
        svc = s.client.get(kube.MONITORED_SERVICES, name, ns)
        service = Service(svc)
        windows = list(sequence(mapping(service.spec.get("maintenance")).get("windows")))
        if s.args.duration is None:
            now_state = dict(mapping(service.status.get("maintenance")))
            if s.args.output != "table":
                print(dump({"service": name, "windows": windows, "status": now_state}, s.args.output), end="")
                return
            print(f"{name}: " + (f"in maintenance until {now_state.get('until')} ({now_state.get('source')})"
                                 + (f": {now_state['reason']}" if now_state.get("reason") else "")
                                 if now_state.get("active") else "not in maintenance"))
            for w in windows:
                when = (f"{w.get('start')} → {w.get('end')}" if w.get("start")
                        else f"every '{w.get('schedule')}' for {w.get('durationMinutes')} min")
                print(f"  {when}" + (f"  {w['reason']}" if w.get("reason") else "")
                      + (f"  (by {w['author']})" if w.get("author") else ""))
            return
        window = maintenance.window_for(s.now, s.args.duration, s.args.reason or "", s.actor())
        try:
            s.client.patch(kube.MONITORED_SERVICES, name, {
                "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
                "spec": {"maintenance": {"windows": windows + [window]}}}, ns)
        except kube.Conflict:
            continue
        print(f"monitoredservice.paramedic.dev/{name} in maintenance until {window['end']}")
        return
    raise CliError(f"MonitoredService {name} kept changing; try again")


def cmd_assign(s: Session) -> None:
    if not is_email(s.args.email):
        raise CliError(f"{s.args.email!r} is not an e-mail address", EXIT_USAGE)
    patch_incident(s, s.args.name, {"assignee": s.args.email})
    print(f"incident.paramedic.dev/{s.args.name} assigned to {s.args.email}")


def cmd_rca(s: Session) -> None:
    given = {key: getattr(s.args, opt) for opt, key in RCA_OPTIONS if getattr(s.args, opt) is not None}
    if s.args.edit and given:
        raise CliError("use either --edit or the --root-cause ... options, not both", EXIT_USAGE)
    if s.args.edit:
        inc = s.get_incident(s.args.name)
        changes = edit_rca(inc, s.args.name)
        if changes is None:
            print("Edit cancelled, no changes made.")
            return
    elif not given:
        raise CliError("nothing to record: give --root-cause, --contributing-factors, --corrective-actions, "
                       "--prevention-actions, or --edit", EXIT_USAGE)
    else:
        changes = {k: (v if v.strip() else None) for k, v in given.items()}
    patch_incident(s, s.args.name, {"rca": changes})
    print(f"incident.paramedic.dev/{s.args.name} root-cause analysis recorded")


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so the template is pleasant to edit."""


_BlockDumper.add_representer(str, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def rca_template(inc: dict, name: str) -> str:
    rca = mapping(Incident(inc).spec.get("rca"))
    values = {key: rca.get(key) or "" for _, key in RCA_OPTIONS}
    head = (f"# Root-cause analysis of incident {inc['metadata'].get('namespace')}/{name}.\n"
            "# Lines starting with '#' are ignored. Use `|` blocks for several lines.\n"
            "# Save and quit to record it; leave it unchanged to cancel. rootCause is needed to close.\n")
    return head + yaml.dump(values, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def edit_rca(inc: dict, name: str) -> dict | None:
    """Open $KUBE_EDITOR / $EDITOR on the RCA template; the changed fields, or None if unchanged."""
    original = rca_template(inc, name)
    editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(prefix=f"paramedic-rca-{name}-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        fh.write(original)
    try:
        result = subprocess.run(shlex.split(editor) + [path], check=False)
    except OSError as exc:
        raise CliError(f"cannot run the editor {editor!r}: {exc.strerror}") from exc
    if result.returncode != 0:
        raise CliError(f"the editor exited with status {result.returncode}; your text is kept in {path}")
    text = Path(path).read_text()
    if text == original:
        os.unlink(path)
        return None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CliError(f"the edited text is not valid YAML ({exc}); your text is kept in {path}") from exc
    if not isinstance(data, dict):
        raise CliError(f"the edited text must be a mapping of RCA fields; your text is kept in {path}")
    allowed = [key for _, key in RCA_OPTIONS]
    unknown = sorted(set(map(str, data)) - set(allowed))
    if unknown:
        raise CliError(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(allowed)}); "
                       f"your text is kept in {path}")
    os.unlink(path)
    return {key: (str(data[key]).strip() or None) if data.get(key) is not None else None for key in allowed}


def cmd_report(s: Session) -> None:
    text = render_postmortem(s.get_incident(s.args.name), s.now)
    if s.args.file and s.args.file != "-":
        try:
            Path(s.args.file).write_text(text)
        except OSError as exc:
            raise CliError(f"cannot write {s.args.file}: {exc.strerror}") from exc
        print(f"post-mortem of {s.args.name} written to {s.args.file}")
    else:
        print(text, end="")


# --- on-call and stats ------------------------------------------------------------------------

def oncall_view(schedule: dict, now: datetime) -> dict:
    """Who is on call for one OnCallSchedule now, and who is next."""
    sch = Schedule(schedule)
    view: dict[str, Any] = {"team": sch.meta.get("name"), "namespace": sch.meta.get("namespace")}
    who = on_call(sch.spec, now)
    if who.error:
        view["error"] = who.error
    else:
        view.update(onCall=who.now, override=who.override, nextHandoff=iso(who.handoff) if who.handoff else None,
                    next=who.next)
    return view


def cmd_oncall(s: Session) -> None:
    if s.args.team:
        schedules = [s.client.get(kube.ONCALL_SCHEDULES, s.args.team, s.one_namespace())]
    else:
        schedules = s.client.list(kube.ONCALL_SCHEDULES, s.scope())
    views = [oncall_view(sch, s.now) for sch in sorted(schedules, key=lambda x: x["metadata"]["name"])]
    if s.args.output != "table":
        print(dump(views if not s.args.team else views[0], s.args.output), end="")
        return
    if not views:
        print(f"No on-call schedules found in {s.namespace if not s.args.all_namespaces else 'any'} namespace.",
              file=sys.stderr)
        return
    rows = []
    for v in views:
        if "error" in v:
            rows.append([v["team"], f"<invalid: {v['error']}>", "", "", ""])
            continue
        handoff = parse_or_none(v["nextHandoff"])
        when = f"{v['nextHandoff']} (in {human_age((handoff - s.now).total_seconds())})" if handoff else "<never>"
        rows.append([v["team"], _who(v["onCall"]), "yes" if v["override"] else "no", when,
                     _who(v["next"]) if v["next"] else "<none>"])
    header = ["TEAM", "ON CALL", "OVERRIDE", "NEXT HANDOFF", "NEXT"]
    if s.args.all_namespaces:
        header = ["NAMESPACE"] + header
        rows = [[v["namespace"]] + r for v, r in zip(views, rows, strict=True)]
    print(table(header, rows), end="")


def _who(person: dict) -> str:
    return person["email"] if person["name"] == person["email"] else f"{person['name']} <{person['email']}>"


def cmd_stats(s: Session) -> None:
    stats = compute_stats(s.client.list(kube.INCIDENTS, s.scope()), s.now, s.args.window)
    print(dump(stats, s.args.output) if s.args.output != "table" else render_stats_table(stats), end="")


# --- fire ------------------------------------------------------------------------------------------

def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--label {pair!r} must look like key=value", EXIT_USAGE)
        labels[key.strip()] = value
    return labels


def cmd_fire(s: Session) -> None:
    url = s.args.url or s.settings.webhook_url
    if not url:
        raise CliError("no webhook URL: pass --url or set PARAMEDIC_WEBHOOK_URL", EXIT_USAGE)
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/api/v1/alerts"):
        endpoint += "/api/v1/alerts"
    try:
        token = s.args.token if s.args.token is not None else s.settings.secret("webhook_token")
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    labels = parse_labels(s.args.label or [])
    if s.args.namespace and "namespace" not in labels:
        labels["namespace"] = s.args.namespace  # routes the alert to that namespace's services
    payload = {"service": s.args.service, "severity": s.args.severity, "message": s.args.message,
               "labels": labels, "timestamp": iso_ms(s.now)}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.post(endpoint, json=payload, headers=headers, timeout=s.settings.api_timeout_seconds)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the webhook at {endpoint}: {exc}", EXIT_UNREACHABLE) from exc
    body = resp.text.strip()
    if resp.status_code >= 400:
        code = EXIT_UNREACHABLE if resp.status_code in (502, 503, 504) else EXIT_REFUSED
        raise CliError(f"the webhook answered {resp.status_code}: {body[:500]}", code)
    print(body if s.args.output == "table" else dump(_json_or_text(body), s.args.output), end="\n")


def _json_or_text(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


# --- argument parsing -------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Session], None]] = {
    "list": cmd_list, "show": cmd_show, "rca": cmd_rca, "assign": cmd_assign, "report": cmd_report,
    "oncall": cmd_oncall, "stats": cmd_stats, "fire": cmd_fire, "comment": cmd_comment, "runbook": cmd_runbook,
    "step": cmd_step, "maintain": cmd_maintain, **{c: cmd_state for c in STATE_COMMANDS},
}


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """kubectl's global flags; on subcommands they default to SUPPRESS so both positions work."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    parser.add_argument("--kubeconfig", default=d(""), help="path of the kubeconfig file")
    parser.add_argument("--context", default=d(None), help="kubeconfig context to use")
    parser.add_argument("-n", "--namespace", default=d(None), help="namespace (default: the context's)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", default=d(False),
                        help="list across all namespaces")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=d("table"),
                        help="output format")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubectl paramedic", description="Work with Paramedic incidents.",
                     epilog="Exit codes: 0 done, 1 refused or not found, 2 usage error, 3 cluster unreachable.")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, suppress=True)
        return p

    p = add("list", "list incidents (newest first)")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--active", action="store_true", help="only incidents not yet resolved")
    add("show", "show one incident").add_argument("name")
    for command, state in STATE_COMMANDS.items():
        p = add(command, f"move an incident to {state}")
        p.add_argument("name")
        p.add_argument("-m", "--reason", help="why, for the timeline")
    p = add("rca", "record the root-cause analysis")
    p.add_argument("name")
    for opt, _ in RCA_OPTIONS:
        p.add_argument("--" + opt.replace("_", "-"), dest=opt, metavar="TEXT")
    p.add_argument("--edit", action="store_true", help="edit all four fields in $EDITOR")
    p = add("assign", "assign an incident to someone")
    p.add_argument("name")
    p.add_argument("email")
    p = add("comment", "add a comment to an incident's timeline, as you")
    p.add_argument("name")
    p.add_argument("text")
    add("runbook", "list the service's runbook steps and which were applied").add_argument("name")
    p = add("step", "mark a runbook step applied, as you")
    p.add_argument("name")
    p.add_argument("n", type=int, help="the step's number, from `runbook`")
    p.add_argument("--note", help="what was done or seen, for the timeline")
    p = add("maintain", "put a service in maintenance for a while (no incidents from probes, no remediation, "
                        "no paging), or show its windows")
    p.add_argument("service")
    p.add_argument("--for", dest="duration", type=parse_window, default=None, metavar="DURATION",
                   help="how long from now, e.g. 30m or 2h")
    p.add_argument("-m", "--reason", help="why, shown on the service and in incidents")
    p = add("report", "render the Markdown post-mortem")
    p.add_argument("name")
    p.add_argument("-f", "--file", help="write to FILE instead of stdout")
    add("oncall", "who is on call now, and the next hand-off").add_argument("team", nargs="?")
    add("stats", "MTTA, MTTR, SLA and counts").add_argument(
        "--window", type=parse_window, default=None, help="only incidents created within it, e.g. 7d (default: all)")
    p = add("fire", "send a test alert to the Paramedic webhook")
    p.add_argument("--service", required=True)
    p.add_argument("--severity", choices=SEVERITIES, default=DEFAULT_SEVERITY.value)
    p.add_argument("--message", required=True)
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="alert label (repeatable)")
    p.add_argument("--url", help="webhook base URL (default: $PARAMEDIC_WEBHOOK_URL)")
    p.add_argument("--token", help="bearer token (default: $PARAMEDIC_WEBHOOK_TOKEN or _FILE)")
    return parser


def _api_message(exc: kube.ApiError, session: Session | None) -> str:
    message = exc.message or str(exc)
    if isinstance(exc, kube.NotFound) and session is not None and not session.args.all_namespaces:
        return f"{message} in namespace {session.namespace!r}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(stdout), PrintableStream(stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    session: Session | None = None
    try:
        session = Session(args, settings)
        COMMANDS[args.command](session)
        return 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except kube.ApiError as exc:
        print(f"error: {_api_message(exc, session)}", file=sys.stderr)
        return EXIT_REFUSED
    except kube.Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except BrokenPipeError:
        return 0
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    sys.exit(main())
