"""The console as a WSGI app: server-rendered pages over the person's own API access.

`create_app` builds the per-app state (`current.Console`, the session store), sets the
cookie and Jinja2 rules, the CSRF check, the security headers and the error pages, and
registers the blueprints, as Flask's tutorial does: `auth` (sign-in, sign-out, health),
`incidents`, `services`, `oncall` and `insights`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, Response, abort, g, redirect, render_template, request, url_for
from markdown_it import MarkdownIt
from markupsafe import Markup
from werkzeug.middleware.proxy_fix import ProxyFix

from paramedic import kube
from paramedic.domain.notify_render import safe_url
from paramedic.domain.text import printable
from paramedic.settings import Settings

from . import auth, incidents, insights, oncall, services, signin, views
from .apiserver import address_only
from .auth import Keys
from .current import SESSIONS, STATE, Console, SignInNeeded, bearer, console, end_session, render_args
from .people import People
from .sessions import SessionStore, SessionStoreError

log = logging.getLogger("paramedic.console")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
BLUEPRINTS = (signin.bp, incidents.bp, services.bp, oncall.bp, insights.bp)

__all__ = ["SignInNeeded", "create_app", "identity", "list_visible"]


def create_app(settings: Settings | None = None, connection: kube.Connection | None = None,
               secret: bytes | None = None, store: SessionStore | None = None) -> Flask:
    """The console. `connection` gives the API server's address and CA (its credentials are
    never used for people's requests); default: the console's kubeconfig or in-cluster config.
    `store` keeps sessions; default: Secrets in the sessions namespace (never Paramedic's own),
    written with the console's own credentials (`settings.kubeconfig` or its ServiceAccount)."""
    settings = settings or Settings.from_env()
    base = connection or address_only(settings.kubeconfig)
    keys = Keys.derive(secret or auth.load_key(settings.console_session_key_file))
    app = Flask(__name__)
    # X-Forwarded-Proto from a TLS-terminating proxy: HSTS is then sent.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=0)  # type: ignore[method-assign]
    app.session_interface = auth.SessionInterface()
    app.secret_key = keys.signing
    _cookie(app, settings)
    app.extensions[SESSIONS] = store or SessionStore(kube.KubeClient.from_settings(settings),
                                                     settings.sessions_namespace(), keys.seal, keys.unseal,
                                                     settings.console_session_seconds)
    # Each signed-in person's own pooled client and watch-fed lists (console/people.py). `identity`
    # and `list_visible` are looked up here, at creation, so tests may replace them first.
    app.extensions[STATE] = Console(
        settings=settings, base=base, keys=keys,
        people=People(lambda token: auth.user_client(base, token, settings.api_timeout_seconds)),
        markdown=MarkdownIt("commonmark", {"html": False}).enable("table"), identity=identity, lister=list_visible)
    _templates(app)
    app.before_request(check_csrf)
    app.after_request(headers)
    _error_pages(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app


def _cookie(app: Flask, settings: Settings) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_NAME="paramedic_console",
                      # Secure unless the admin said plain HTTP: a proxy that forgets
                      # X-Forwarded-Proto must not make the cookie travel in clear.
                      SESSION_COOKIE_SECURE=not settings.console_insecure_http,
                      # The sealed session end decides; the cookie lives a minute longer so an
                      # expired session reaches the server, which deletes its Secret at once.
                      PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_seconds + 60),
                      # Set only when it changes: a list's poll in flight, answered by any replica,
                      # must not put back the cookie as it was before the person's write.
                      SESSION_REFRESH_EACH_REQUEST=False,
                      MAX_CONTENT_LENGTH=256 * 1024)


def _templates(app: Flask) -> None:
    app.jinja_env.autoescape = True  # every template, whatever its name: CR values are escaped
    # ...and shown without controls or bidi overrides (Markup is the console's own markup).
    app.jinja_env.finalize = lambda value: value if isinstance(value, Markup) or not isinstance(value, str) \
        else printable(value)
    app.jinja_env.filters["href"] = safe_url  # http(s) links only: no javascript: from a CR
    app.jinja_env.filters["anchor"] = views.anchor
    app.context_processor(render_args)


def check_csrf() -> None:
    """Every POST but the sign-in form's carries the CSRF token bound to the person's bearer token."""
    if request.method == "POST" and request.endpoint not in ("auth.signin",):
        token = bearer()
        if not token:
            raise SignInNeeded()
        if not console().keys.csrf_ok(token, request.form.get("csrf", "")):
            abort(400, "the form's CSRF token is missing or wrong: reload the page and try again")


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


# --- errors --------------------------------------------------------------------------------

def _error_pages(app: Flask) -> None:
    app.register_error_handler(SignInNeeded, sign_in_needed)
    app.register_error_handler(kube.ApiError, api_error)
    app.register_error_handler(SessionStoreError, store_error)
    app.register_error_handler(kube.Unavailable, unavailable)
    for code in (400, 404, 409, 405, 413):
        app.register_error_handler(code, http_error)


def sign_in_needed(_exc: SignInNeeded) -> Any:
    if request.endpoint == "incidents.rows":
        return Response("sign in again", status=401)
    return redirect(url_for("auth.signin", next=request.full_path if request.method == "GET" else None))


def api_error(exc: kube.ApiError) -> Any:
    if exc.status == 401:
        token = g.get("token")
        if token:
            console().people.forget(token)
        end_session()
        return redirect(url_for("auth.signin"))
    status = exc.status if exc.status in (403, 404, 409, 422) else 502
    return render_template("error.html", status=status, message=exc.message, api=True), status


def store_error(exc: SessionStoreError) -> Any:
    log.error("%s", exc)
    return render_template("error.html", status=503, message=str(exc), api=False), 503


def unavailable(exc: kube.Unavailable) -> Any:
    return render_template("error.html", status=503, message=str(exc), api=True), 503


def http_error(exc: Any) -> Any:
    return render_template("error.html", status=exc.code, message=exc.description, api=False), exc.code


# --- API helpers (the person's client) ------------------------------------------------------

def identity(client: kube.KubeClient) -> str:
    """The person's Kubernetes user name, as the API server sees it (SelfSubjectReview)."""
    name = client.user_name()
    if not name:
        raise kube.ApiError(401, "the API server returned no user name for this token", "Unauthorized")
    return name


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
