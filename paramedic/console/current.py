"""The app's state and the current request's person, for the console's blueprints.

Per-app state lives in `app.extensions` (`Console` under STATE, the session store under
SESSIONS, which `main` also reads); per-request state in `flask.g`. Nothing at module level:
two apps in one process (tests, replicas) never share a person or a session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import current_app, g, request, session
from markdown_it import MarkdownIt

from paramedic import kube
from paramedic.domain import lifecycle
from paramedic.domain.presentation import format_duration
from paramedic.domain.resources import Resource
from paramedic.domain.vocabulary import SEVERITIES
from paramedic.settings import Settings

from . import auth, views
from .auth import SESSION_ID, Keys
from .people import Lister, People, Person, name_of, visible
from .sessions import Session, SessionStore

STATE = "paramedic.console"
SESSIONS = "paramedic.sessions"
WROTE = "w"
"""The cookie's other field: per resource, the resourceVersion of the person's last write, so that
their next page shows it whichever replica serves it (each replica's watches lag by their own)."""


class SignInNeeded(Exception):
    pass


@dataclass(frozen=True)
class Console:
    """What every request of one console app uses: its settings, the API server's address (never
    the console's own credentials for people), its keys, the signed-in people and how to ask the
    API server who a person is and what they may list (app.py's `identity` and `list_visible`)."""

    settings: Settings
    base: kube.Connection
    keys: Keys
    people: People
    markdown: MarkdownIt
    identity: Callable[[kube.KubeClient], str]
    lister: Lister

    def user_client(self, token: str) -> kube.KubeClient:
        return auth.user_client(self.base, token, self.settings.api_timeout_seconds)


def console() -> Console:
    state: Console = current_app.extensions[STATE]
    return state


def sessions() -> SessionStore:
    store: SessionStore = current_app.extensions[SESSIONS]
    return store


def stored() -> Session | None:
    """The cookie's server-side session (one GET of its Secret per request): None once signed
    out, expired or never signed in."""
    if "stored" not in g:
        sid = session.get(SESSION_ID)
        g.stored = sessions().get(sid) if isinstance(sid, str) and sid else None
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
        g.person = console().people.get(token)
    return g.person


def client() -> kube.KubeClient:
    return person().client


def whoami() -> str:
    if "user" not in g:
        current = stored() if auth.header_token(request) is None else None
        g.user = current.user if current is not None else name_of(person(), console().identity)
    return g.user


def namespaces_hint() -> list[str]:
    current = stored() if auth.header_token(request) is None else None
    hint = list(current.namespaces if current else [])
    own = auth.service_account_namespace(whoami())
    return hint + ([own] if own and own not in hint else [])


def listed(res: kube.Resource) -> tuple[list[dict], list[str]]:
    return visible(person(), res, namespaces_hint(), console().lister, floor=wrote(res))


def summaries() -> tuple[list[views.Summary], list[str]]:
    return visible(person(), kube.INCIDENTS, namespaces_hint(), console().lister, views.summarize,
                   floor=wrote(kube.INCIDENTS))


def written(res: kube.Resource, obj: dict | None) -> None:
    """After a write of the person's: their next pages show at least it, on this replica (memory)
    and on any other (the signed cookie carries its resourceVersion)."""
    person().written(res, obj)
    rv = Resource(obj).resource_version if obj else ""
    if rv:
        floors = session.get(WROTE)
        session[WROTE] = {**(floors if isinstance(floors, dict) else {}), res.plural: rv}


def wrote(res: kube.Resource) -> str:
    """The resourceVersion of the person's last write of `res` through any replica ("" if none)."""
    floors = session.get(WROTE)
    rv = floors.get(res.plural) if isinstance(floors, dict) else None
    return rv if isinstance(rv, str) else ""


def end_session() -> None:
    """The cookie's session is deleted in the cluster (a copy of the cookie is worth nothing
    from now on, on every replica), and the cookie emptied."""
    sid = session.get(SESSION_ID)
    if isinstance(sid, str) and sid:
        sessions().end(sid)
    g.pop("stored", None)
    session.clear()


def can(client: kube.KubeClient, verb: str, res: kube.Resource, namespace: str, name: str | None = None) -> bool:
    """Whether the person may `verb` the resource (SelfSubjectAccessReview): offered actions only."""
    attrs = {"group": res.group, "resource": res.plural, "verb": verb, "namespace": namespace}
    if name:
        attrs["name"] = name
    review = client.create(kube.SELF_SUBJECT_ACCESS_REVIEWS, {"metadata": {}, "spec": {"resourceAttributes": attrs}})
    status = review.get("status") if isinstance(review, dict) else None
    return isinstance(status, dict) and bool(status.get("allowed"))


def query_string(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else ""


def render_args() -> dict[str, Any]:
    """What every template sees: the form's CSRF token, the person's name, the page, the vocabulary."""
    token = g.get("token")
    return {"csrf": console().keys.csrf_token(token) if token else "", "user": g.get("user", ""),
            "nav": request.endpoint, "states": lifecycle.STATES, "severities": [str(s) for s in SEVERITIES],
            "duration": format_duration}
