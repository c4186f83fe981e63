"""Blueprint `auth`: signing in and out, and the liveness probe (no person needed)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from paramedic import kube

from . import auth, views
from .auth import SESSION_ID, SESSION_SIGNIN
from .current import bearer, console, end_session, sessions

bp = Blueprint("auth", __name__)

NOT_A_NEXT_PAGE = frozenset({"auth.healthz", "static", "auth.signin", "auth.signout"})
"""Endpoints sign-in never sends the browser on to."""
NAMESPACES_MAX = 50


@bp.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    keys = console().keys
    error = ""
    if request.method == "POST":
        if not keys.csrf_ok(session.get(SESSION_SIGNIN, ""), request.form.get("csrf", "")):
            # A sign-in form posted from elsewhere (login CSRF): its page never got our cookie.
            abort(400, "the sign-in form is stale or was not sent from this console: reload it and try again")
        token = request.form.get("token", "").strip()
        wanted = [n for n in request.form.get("namespaces", "").replace(",", " ").split() if n][:NAMESPACES_MAX]
        error, user = _check(token, wanted)
        if user:
            end_session()  # a session the cookie had before is over
            sid, _ = sessions().open(token, user, wanted)
            session.permanent = True
            session[SESSION_ID] = sid
            return redirect(next_page(request.args.get("next") or ""))
    if not session.get(SESSION_SIGNIN):
        session[SESSION_SIGNIN] = secrets.token_hex(16)
    return render_template("signin.html", error=error, signin_csrf=keys.csrf_token(session[SESSION_SIGNIN])), \
        (401 if error else 200)


def _check(token: str, wanted: list[str]) -> tuple[str, str]:
    """(what is wrong, the person's name): the form's fields, then the token, asked as its owner."""
    bad = [n for n in wanted if not views.is_namespace(n)]
    if not token:
        return "Paste a Kubernetes bearer token.", ""
    if bad:
        return f"Not a namespace name: {bad[0]}", ""
    probe = console().user_client(token)
    try:
        return "", console().identity(probe)
    except kube.ApiError as exc:
        return ("The API server did not accept this token." if exc.status == 401
                else f"The API server refused: {exc.message}"), ""
    finally:
        probe.close()


@bp.post("/signout")
def signout() -> Any:
    token = bearer()
    if token:
        console().people.forget(token)
    end_session()
    return redirect(url_for("auth.signin"))


def next_page(target: str) -> str:
    """Where to go after signing in: a page of this console, never another site (else home)."""
    home = url_for("incidents.incidents")
    if not auth.local_path(target):
        return home
    path = target.split("?", 1)[0].split("#", 1)[0]
    try:
        endpoint, _ = current_app.url_map.bind("console.invalid").match(unquote(path), method="GET")
    except (HTTPException, RequestRedirect):
        return home
    return target if endpoint not in NOT_A_NEXT_PAGE else home
