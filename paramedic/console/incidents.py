"""Blueprint `incidents`: the list, its live rows, one incident and people's changes to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from paramedic import entries_io, kube
from paramedic.domain import entries, lifecycle
from paramedic.domain.report import RCA_FIELDS, render_postmortem
from paramedic.domain.resources import Incident
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import is_email

from . import views
from .current import can, client, console, query_string, summaries, whoami, written

bp = Blueprint("incidents", __name__)

TEXT_MAX = 8000


@bp.get("/")
def index() -> Any:
    return redirect(url_for("incidents.incidents"))


def _listing() -> tuple[views.Filters, views.Listing, list[str]]:
    filters = views.Filters.parse(request.args)
    items, denied = summaries()
    return filters, views.listing(items, filters, utcnow()), denied


@bp.get("/incidents")
def incidents() -> Any:
    whoami()
    filters, listing, denied = _listing()
    return render_template("incidents.html", f=filters, listing=listing, denied=denied,
                           rows_url=url_for("incidents.rows") + query_string(dict(request.args)),
                           state_url=state_url)


@bp.get("/incidents/rows")
def rows() -> Any:
    filters, listing, _ = _listing()
    return render_template("_rows.html", f=filters, listing=listing, state_url=state_url)


def state_url(state: str) -> str:
    """The incidents page with the current filters and `state` (none: all states)."""
    query = {k: v for k, v in request.args.items() if k != "state"}
    if state:
        query["state"] = state
    return url_for("incidents.incidents") + query_string(query)


def get_incident(ns: str, name: str) -> dict:
    return client().get(kube.INCIDENTS, name, ns)


@bp.get("/ns/<ns>/incidents/<name>")
def incident(ns: str, name: str) -> Any:
    whoami()
    inc = get_incident(ns, name)
    view = Incident(inc)
    now = utcnow()
    may_patch = can(client(), "patch", kube.INCIDENTS, ns, name)
    report = render_postmortem(inc, now)
    context = views.incident_context(inc, service_of(inc, ns))
    return render_template("incident.html", inc=inc, ns=ns, name=name, row=views.row(inc, now), ctx=context,
                           clocks=views.clocks(inc), sla=views.sla_clocks(inc, now),
                           moves=views.moves(inc) if may_patch else [], may_patch=may_patch,
                           rca_fields=RCA_FIELDS, report_html=console().markdown.render(report),
                           spec=view.spec, status=view.status)


def service_of(inc: dict, ns: str) -> dict | None:
    """The incident's MonitoredService (its runbook), if the person may read it."""
    svc = Incident(inc).service
    if not svc:
        return None
    try:
        return client().get_or_none(kube.MONITORED_SERVICES, svc, ns)
    except kube.ApiError as exc:
        if exc.status != 403:
            raise
        return None


def append_entry(ns: str, name: str, field: str, make: Callable[[dict], dict]) -> Any:
    """Append the entry `make(incident)` builds to `field` as the person (entries_io). The API
    server decides: RBAC, and the attribution policy (the author must be the person; entries
    are append-only); a refusal is its error page."""
    try:
        appended = entries_io.append(client(), ns, name, field, make)
    except ValueError as exc:
        abort(400, str(exc))
    except entries_io.KeptChanging as exc:
        abort(409, str(exc))
    written(kube.INCIDENTS, appended)
    return redirect(url_for("incidents.incident", ns=ns, name=name) + "#h-notes-people")


@bp.post("/ns/<ns>/incidents/<name>/comment")
def comment(ns: str, name: str) -> Any:
    text = request.form.get("text", "")
    return append_entry(ns, name, entries.COMMENTS, lambda _inc: entries.comment_entry(whoami(), utcnow(), text))


@bp.post("/ns/<ns>/incidents/<name>/step")
def step(ns: str, name: str) -> Any:
    try:
        n = int(request.form.get("step", ""))
    except ValueError:
        abort(400, "which runbook step? (a number)")
    note = request.form.get("note", "")

    def make(inc: dict) -> dict:
        view = entries.runbook_view(inc, service_of(inc, ns))
        return entries.step_entry(view, n, whoami(), utcnow(), note, Incident(inc).service or "?")
    return append_entry(ns, name, entries.RUNBOOK_STEPS, make)


def patch_incident(ns: str, name: str, changes: dict[str, Any], reason: str | None = None) -> Any:
    """The same merge patch `kubectl paramedic` writes: the change, who made it, why and when."""
    patch = lifecycle.spec_patch(changes, whoami(), reason, utcnow())
    written(kube.INCIDENTS, client().patch(kube.INCIDENTS, name, patch, ns))
    return redirect(url_for("incidents.incident", ns=ns, name=name))


@bp.post("/ns/<ns>/incidents/<name>/state")
def change_state(ns: str, name: str) -> Any:
    state = request.form.get("state", "")
    if state not in lifecycle.STATES:
        abort(400, f"unknown state {state!r}")
    reason = request.form.get("reason", "").strip()[:TEXT_MAX] or None
    return patch_incident(ns, name, {"state": state}, reason)


@bp.post("/ns/<ns>/incidents/<name>/assign")
def assign(ns: str, name: str) -> Any:
    email = request.form.get("assignee", "").strip()
    if not is_email(email):
        abort(400, f"{email!r} is not an e-mail address")
    return patch_incident(ns, name, {"assignee": email})


@bp.post("/ns/<ns>/incidents/<name>/rca")
def rca(ns: str, name: str) -> Any:
    changes = {key: (request.form.get(key, "").strip()[:TEXT_MAX] or None) for key, _ in RCA_FIELDS}
    return patch_incident(ns, name, {"rca": changes})


@bp.get("/ns/<ns>/incidents/<name>/report.md")
def report(ns: str, name: str) -> Any:
    text = render_postmortem(get_incident(ns, name), utcnow())
    return Response(text, mimetype="text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="{views.filename(ns, name)}.md"'})
