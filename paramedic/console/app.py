"""The console as a WSGI app: server-rendered pages over the person's own API access."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlencode

from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from markdown_it import MarkdownIt
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import RequestRedirect

from paramedic import entries_io, kube
from paramedic.domain import entries, lifecycle
from paramedic.domain.notify_render import safe_url
from paramedic.domain.report import RCA_FIELDS, render_postmortem
from paramedic.domain.stats import compute_stats, daily_series, format_duration, noisiest_services, remediation_outcomes
from paramedic.domain.text import printable
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import SEVERITIES
from paramedic.settings import Settings

from . import auth, charts, views
from .apiserver import address_only
from .auth import SESSION_ID, SESSION_SIGNIN, Keys
from .people import People, Person, name_of, visible
from .sessions import Session, SessionStore, SessionStoreError

log = logging.getLogger("paramedic.console")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
EMAIL_MAX = 254
TEXT_MAX = 8000
INSIGHT_RANGES = {"7d": 7, "30d": 30, "90d": 90}
OPEN_ENDPOINTS = frozenset({"healthz", "static", "signin"})
NOT_A_NEXT_PAGE = frozenset({"healthz", "static", "signin", "signout"})


class SignInNeeded(Exception):
    pass


def create_app(settings: Settings | None = None, connection: kube.Connection | None = None,
               secret: bytes | None = None, store: SessionStore | None = None) -> Flask:
    """The console. `connection` gives the API server's address and CA (its credentials are
    never used for people's requests); default: the console's kubeconfig or in-cluster config.
    `store` keeps sessions; default: Secrets in the sessions namespace (never Paramedic's own),
    written with the console's own credentials (`settings.kubeconfig` or its ServiceAccount)."""
    settings = settings or Settings.from_env()
    base = connection or address_only(settings.kubeconfig)
    keys = Keys.derive(secret or auth.load_key(settings.console_session_key_file))
    sessions = store or SessionStore(kube.KubeClient.from_settings(settings), settings.sessions_namespace(),
                                     keys.seal, keys.unseal, settings.console_session_seconds)
    app = Flask(__name__)
    # X-Forwarded-Proto from a TLS-terminating proxy: HSTS is then sent.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=0)  # type: ignore[method-assign]
    app.session_interface = auth.SessionInterface()
    app.secret_key = keys.signing
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="paramedic_console",
                      # Secure unless the admin said plain HTTP: a proxy that forgets
                      # X-Forwarded-Proto must not make the cookie travel in clear.
                      SESSION_COOKIE_SECURE=not settings.console_insecure_http,
                      # The sealed session end decides; the cookie lives a minute longer so an
                      # expired session reaches the server, which deletes its Secret at once.
                      PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_seconds + 60),
                      MAX_CONTENT_LENGTH=256 * 1024)
    app.extensions["paramedic.sessions"] = sessions
    app.jinja_env.autoescape = True  # every template, whatever its name: CR values are escaped
    # ...and shown without controls or bidi overrides (Markup is the console's own markup).
    app.jinja_env.finalize = lambda value: value if isinstance(value, Markup) or not isinstance(value, str) \
        else printable(value)
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    # Each signed-in person's own pooled client and watch-fed lists (console/people.py).
    people = People(lambda token: auth.user_client(base, token, settings.api_timeout_seconds))
    app.extensions["paramedic.people"] = people

    # --- the person ------------------------------------------------------------------------
    def stored() -> Session | None:
        """The cookie's server-side session (one GET of its Secret per request): None once
        signed out, expired or never signed in."""
        if "stored" not in g:
            sid = session.get(SESSION_ID)
            g.stored = sessions.get(sid) if isinstance(sid, str) and sid else None
            if sid and g.stored is None:
                session.pop(SESSION_ID, None)
        return g.stored

    def bearer() -> str | None:
        token = auth.header_token(request)
        if token:
            return token
        current = stored()
        return current.token if current else None

    def person() -> Person:
        if "person" not in g:
            token = bearer()
            if not token:
                raise SignInNeeded()
            g.token = token
            g.person = people.get(token)
        return g.person

    def client() -> kube.KubeClient:
        return person().client

    def whoami() -> str:
        if "user" not in g:
            current = stored() if auth.header_token(request) is None else None
            if current is not None:
                g.user = current.user
            else:
                g.user = name_of(person(), identity)
        return g.user

    def listed(res: kube.Resource) -> tuple[list[dict], list[str]]:
        return visible(person(), res, namespaces_hint(), list_visible)

    def summaries() -> tuple[list[views.Summary], list[str]]:
        return visible(person(), kube.INCIDENTS, namespaces_hint(), list_visible, views.summarize)

    def namespaces_hint() -> list[str]:
        current = stored() if auth.header_token(request) is None else None
        hint = list(current.namespaces if current else [])
        own = auth.service_account_namespace(whoami())
        return hint + ([own] if own and own not in hint else [])

    @app.context_processor
    def globals_() -> dict[str, Any]:
        token = g.get("token")
        return {"csrf": keys.csrf_token(token) if token else "", "user": g.get("user", ""),
                "nav": request.endpoint, "states": lifecycle.STATES, "severities": [str(s) for s in SEVERITIES],
                "duration": format_duration}

    @app.before_request
    def check_csrf() -> None:
        if request.method == "POST" and request.endpoint not in ("signin",):
            token = bearer()
            if not token:
                raise SignInNeeded()
            if not keys.csrf_ok(token, request.form.get("csrf", "")):
                abort(400, "the form's CSRF token is missing or wrong: reload the page and try again")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["X-Frame-Options"] = "DENY"
        if request.is_secure:  # browsers keep to HTTPS for this host from then on
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    # --- errors ----------------------------------------------------------------------------
    @app.errorhandler(SignInNeeded)
    def sign_in_needed(_exc: SignInNeeded) -> Any:
        if request.endpoint == "rows":
            return Response("sign in again", status=401)
        return redirect(url_for("signin", next=request.full_path if request.method == "GET" else None))

    @app.errorhandler(kube.ApiError)
    def api_error(exc: kube.ApiError) -> Any:
        if exc.status == 401:
            token = g.get("token")
            if token:
                people.forget(token)
            end_session()
            return redirect(url_for("signin"))
        status = exc.status if exc.status in (403, 404, 409, 422) else 502
        return render_template("error.html", status=status, message=exc.message, api=True), status

    @app.errorhandler(SessionStoreError)
    def store_error(exc: SessionStoreError) -> Any:
        log.error("%s", exc)
        return render_template("error.html", status=503, message=str(exc), api=False), 503

    @app.errorhandler(kube.Unavailable)
    def unavailable(exc: kube.Unavailable) -> Any:
        return render_template("error.html", status=503, message=str(exc), api=True), 503

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(409)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(exc: Any) -> Any:
        return render_template("error.html", status=exc.code, message=exc.description, api=False), exc.code

    # --- sign-in ---------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    @app.route("/signin", methods=["GET", "POST"])
    def signin() -> Any:
        error = ""
        if request.method == "POST" and not keys.csrf_ok(session.get(SESSION_SIGNIN, ""),
                                                         request.form.get("csrf", "")):
            # A sign-in form posted from elsewhere (login CSRF): its page never got our cookie.
            abort(400, "the sign-in form is stale or was not sent from this console: reload it and try again")
        if request.method == "POST":
            token = request.form.get("token", "").strip()
            wanted = [n for n in request.form.get("namespaces", "").replace(",", " ").split() if n][:50]
            bad = [n for n in wanted if not views.is_namespace(n)]
            if not token:
                error = "Paste a Kubernetes bearer token."
            elif bad:
                error = f"Not a namespace name: {bad[0]}"
            else:
                probe = auth.user_client(base, token, settings.api_timeout_seconds)
                try:
                    user = identity(probe)
                except kube.ApiError as exc:
                    error = "The API server did not accept this token." if exc.status == 401 \
                        else f"The API server refused: {exc.message}"
                    user = ""
                finally:
                    probe.close()
                if user:
                    end_session()  # a session the cookie had before is over
                    sid, _ = sessions.open(token, user, wanted)
                    session.permanent = True
                    session[SESSION_ID] = sid
                    return redirect(next_page(request.args.get("next") or ""))
        if not session.get(SESSION_SIGNIN):
            session[SESSION_SIGNIN] = secrets.token_hex(16)
        return render_template("signin.html", error=error, signin_csrf=keys.csrf_token(session[SESSION_SIGNIN])), \
            (401 if error else 200)

    @app.post("/signout")
    def signout() -> Any:
        token = bearer()
        if token:
            people.forget(token)
        end_session()
        return redirect(url_for("signin"))

    def end_session() -> None:
        """The cookie's session is deleted in the cluster (a copy of the cookie is worth nothing
        from now on, on every replica), and the cookie emptied."""
        sid = session.get(SESSION_ID)
        if isinstance(sid, str) and sid:
            sessions.end(sid)
        g.pop("stored", None)
        session.clear()

    def next_page(target: str) -> str:
        """Where to go after signing in: a page of this console, never another site (else home)."""
        if not auth.local_path(target):
            return url_for("incidents")
        path = target.split("?", 1)[0].split("#", 1)[0]
        try:
            endpoint, _ = app.url_map.bind("console.invalid").match(unquote(path), method="GET")
        except (HTTPException, RequestRedirect):
            return url_for("incidents")
        return target if endpoint not in NOT_A_NEXT_PAGE else url_for("incidents")

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("incidents"))

    # --- incidents -------------------------------------------------------------------------
    def incident_listing() -> tuple[views.Filters, views.Listing, list[str]]:
        filters = views.Filters.parse(request.args)
        items, denied = summaries()
        return filters, views.listing(items, filters, utcnow()), denied

    @app.get("/incidents")
    def incidents() -> Any:
        whoami()
        filters, listing, denied = incident_listing()
        return render_template("incidents.html", f=filters, listing=listing, denied=denied,
                               rows_url=url_for("rows") + query_string(dict(request.args)), state_url=state_url)

    @app.get("/incidents/rows")
    def rows() -> Any:
        filters, listing, _ = incident_listing()
        return render_template("_rows.html", f=filters, listing=listing, state_url=state_url)

    def state_url(state: str) -> str:
        """The incidents page with the current filters and `state` (none: all states)."""
        query = {k: v for k, v in request.args.items() if k != "state"}
        if state:
            query["state"] = state
        return url_for("incidents") + query_string(query)

    def get_incident(ns: str, name: str) -> dict:
        return client().get(kube.INCIDENTS, name, ns)

    @app.get("/ns/<ns>/incidents/<name>")
    def incident(ns: str, name: str) -> Any:
        whoami()
        inc = get_incident(ns, name)
        now = utcnow()
        may_patch = can(client(), "patch", kube.INCIDENTS, ns, name)
        report = render_postmortem(inc, now)
        context = views.incident_context(inc, service_of(inc, ns))
        return render_template("incident.html", inc=inc, ns=ns, name=name, row=views.row(inc, now), ctx=context,
                               clocks=views.clocks(inc), sla=views.sla_clocks(inc, now),
                               moves=views.moves(inc) if may_patch else [], may_patch=may_patch,
                               rca_fields=RCA_FIELDS, report_html=markdown.render(report),
                               spec=inc.get("spec") or {}, status=inc.get("status") or {})

    def service_of(inc: dict, ns: str) -> dict | None:
        """The incident's MonitoredService (its runbook), if the person may read it."""
        svc = str((inc.get("spec") or {}).get("service") or "")
        if not svc:
            return None
        try:
            return client().get_or_none(kube.MONITORED_SERVICES, svc, ns)
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            return None

    def append_entry(ns: str, name: str, field: str, make: Any) -> Any:
        """Append the entry `make(incident)` builds to `field` as the person (entries_io). The API
        server decides: RBAC, and the attribution policy (the author must be the person; entries
        are append-only); a refusal is its error page."""
        try:
            written = entries_io.append(client(), ns, name, field, make)
        except ValueError as exc:
            abort(400, str(exc))
        except entries_io.KeptChanging as exc:
            abort(409, str(exc))
        person().written(kube.INCIDENTS, written)
        return redirect(url_for("incident", ns=ns, name=name) + "#h-notes-people")

    @app.post("/ns/<ns>/incidents/<name>/comment")
    def comment(ns: str, name: str) -> Any:
        text = request.form.get("text", "")
        return append_entry(ns, name, entries.COMMENTS, lambda _inc: entries.comment_entry(whoami(), utcnow(), text))

    @app.post("/ns/<ns>/incidents/<name>/step")
    def step(ns: str, name: str) -> Any:
        try:
            n = int(request.form.get("step", ""))
        except ValueError:
            abort(400, "which runbook step? (a number)")
        note = request.form.get("note", "")

        def make(inc: dict) -> dict:
            view = entries.runbook_view(inc, service_of(inc, ns))
            return entries.step_entry(view, n, whoami(), utcnow(), note, str(inc["spec"].get("service") or "?"))
        return append_entry(ns, name, entries.RUNBOOK_STEPS, make)

    def patch_incident(ns: str, name: str, changes: dict[str, Any], reason: str | None = None) -> Any:
        """The same merge patch `kubectl paramedic` writes: the change, who made it, why and when."""
        patch = lifecycle.spec_patch(changes, whoami(), reason, utcnow())
        person().written(kube.INCIDENTS, client().patch(kube.INCIDENTS, name, patch, ns))
        return redirect(url_for("incident", ns=ns, name=name))

    @app.post("/ns/<ns>/incidents/<name>/state")
    def change_state(ns: str, name: str) -> Any:
        state = request.form.get("state", "")
        if state not in lifecycle.STATES:
            abort(400, f"unknown state {state!r}")
        reason = request.form.get("reason", "").strip()[:TEXT_MAX] or None
        return patch_incident(ns, name, {"state": state}, reason)

    @app.post("/ns/<ns>/incidents/<name>/assign")
    def assign(ns: str, name: str) -> Any:
        email = request.form.get("assignee", "").strip()
        if not views.EMAIL.match(email) or len(email) > EMAIL_MAX:
            abort(400, f"{email!r} is not an e-mail address")
        return patch_incident(ns, name, {"assignee": email})

    @app.post("/ns/<ns>/incidents/<name>/rca")
    def rca(ns: str, name: str) -> Any:
        changes = {key: (request.form.get(key, "").strip()[:TEXT_MAX] or None) for key, _ in RCA_FIELDS}
        return patch_incident(ns, name, {"rca": changes})

    @app.get("/ns/<ns>/incidents/<name>/report.md")
    def report(ns: str, name: str) -> Any:
        text = render_postmortem(get_incident(ns, name), utcnow())
        return Response(text, mimetype="text/markdown",
                        headers={"Content-Disposition": f'attachment; filename="{views.filename(ns, name)}.md"'})

    # --- services --------------------------------------------------------------------------
    @app.get("/services")
    def services() -> Any:
        whoami()
        items, denied = listed(kube.MONITORED_SERVICES)
        items.sort(key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"]))
        patchable = {ns: can(client(), "patch", kube.MONITORED_SERVICES, ns)
                     for ns in {s["metadata"].get("namespace", "") for s in items}}
        return render_template("services.html", items=[views.service_row(s) for s in items], patchable=patchable,
                               denied=denied)

    @app.post("/ns/<ns>/services/<name>/pause")
    def pause(ns: str, name: str) -> Any:
        paused = request.form.get("paused") == "true"
        patch = {"metadata": {"annotations": {lifecycle.PAUSED_ANNOTATION: "true" if paused else None}}}
        person().written(kube.MONITORED_SERVICES, client().patch(kube.MONITORED_SERVICES, name, patch, ns))
        return redirect(url_for("services"))

    # --- on call ---------------------------------------------------------------------------
    @app.get("/oncall")
    def oncall() -> Any:
        whoami()
        items, denied = listed(kube.ONCALL_SCHEDULES)
        now = utcnow()
        teams = [views.oncall_team(s, now) for s in sorted(items, key=lambda s: (s["metadata"].get("namespace", ""),
                                                                                 s["metadata"]["name"]))]
        return render_template("oncall.html", teams=teams, denied=denied)

    # --- insights --------------------------------------------------------------------------
    @app.get("/insights")
    def insights() -> Any:
        whoami()
        rng = request.args.get("range", "30d")
        days = INSIGHT_RANGES.get(rng, 30)
        items, denied = listed(kube.INCIDENTS)
        now = utcnow()
        recent = [i for i in items if views.created_within(i, now, days)]
        series = daily_series(recent, now, days)
        labels = [b["day"][5:] for b in series]
        sevs = [str(s) for s in SEVERITIES]
        per_day = charts.stacked_bars("Incidents per day by severity", labels,
                                      [(s, [b["bySeverity"].get(s, 0) for b in series]) for s in sevs])

        def minutes(key: str, sev: str) -> list[float | None]:
            return [None if sev not in b[key] else b[key][sev] / 60 for b in series]
        mtta = charts.lines("MTTA by severity (minutes)", labels, [(s, minutes("mtta", s)) for s in sevs], "{:.1f}")
        mttr = charts.lines("MTTR by severity (minutes)", labels, [(s, minutes("mttr", s)) for s in sevs], "{:.1f}")
        breach = charts.lines("SLA breach rate (%)", labels,
                              [("rate", [100 * b["breached"] / b["total"] if b["total"] else None for b in series])],
                              "{:.0f}%")
        noisy = charts.hbars("Noisiest services", noisiest_services(recent, 10))
        outcomes = remediation_outcomes(recent)
        return render_template("insights.html", rng=rng, ranges=list(INSIGHT_RANGES), denied=denied,
                               stats=compute_stats(recent, now), per_day=per_day, mtta=mtta, mttr=mttr, breach=breach,
                               noisy=noisy, outcomes=outcomes,
                               remediation=charts.hbars("Remediation attempts by result",
                                                        list(outcomes["byResult"].items())))

    app.jinja_env.filters["href"] = safe_url  # http(s) links only: no javascript: from a CR
    app.jinja_env.filters["anchor"] = views.anchor
    return app


def query_string(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else ""


# --- API helpers (the person's client) ------------------------------------------------------

def identity(client: kube.KubeClient) -> str:
    """The person's Kubernetes user name, as the API server sees it (SelfSubjectReview)."""
    review = client.create(kube.SELF_SUBJECT_REVIEWS, {"metadata": {}})
    name = (((review or {}).get("status") or {}).get("userInfo") or {}).get("username")
    if not name:
        raise kube.ApiError(401, "the API server returned no user name for this token", "Unauthorized")
    return str(name)


def can(client: kube.KubeClient, verb: str, res: kube.Resource, namespace: str, name: str | None = None) -> bool:
    """Whether the person may `verb` the resource (SelfSubjectAccessReview): offered actions only."""
    attrs = {"group": res.group, "resource": res.plural, "verb": verb, "namespace": namespace}
    if name:
        attrs["name"] = name
    review = client.create(kube.SELF_SUBJECT_ACCESS_REVIEWS, {"metadata": {}, "spec": {"resourceAttributes": attrs}})
    return bool(((review or {}).get("status") or {}).get("allowed"))


def list_visible(client: kube.KubeClient, res: kube.Resource, hint: list[str],
                 not_older_than: str = "", scope_only: bool = False) -> tuple[list[dict], list[str], list[str] | None]:
    """Every object of `res` the person may list: across the cluster when allowed, else in each
    namespace they may list (all namespaces' names if they may read those, plus the ones they
    named at sign-in and their ServiceAccount's). Served by the watch cache (cheap; new objects
    show up within a moment). Returns (items, namespaces refused, the scope listed: None for
    cluster-wide, else the namespaces). After a write of the person's, no older than it.
    `scope_only`: the same walk with LISTs of one item, to check the scope without its items."""
    floor = kube.ReadFloor()
    floor.see({"metadata": {"resourceVersion": not_older_than}})
    cached = not not_older_than

    def list_in(ns: str | None) -> list[dict]:
        if scope_only:
            client.list_first(res, ns)
            return []
        return client.list(res, ns, cached=cached, floor=None if cached else floor)
    try:
        return list_in(None), [], None
    except kube.ApiError as exc:
        if exc.status != 403:
            raise
    names = list(hint)
    try:
        names += [n["metadata"]["name"] for n in client.list(kube.NAMESPACES, cached=True)]
    except kube.ApiError as exc:
        if exc.status != 403:
            raise
    items: list[dict] = []
    denied: list[str] = []
    scope: list[str] = []
    for ns in dict.fromkeys(names):
        try:
            items += list_in(ns)
            scope.append(ns)
        except kube.ApiError as exc:
            if exc.status not in (403, 404):
                raise
            if ns in hint:
                denied.append(ns)
    return items, denied, scope
