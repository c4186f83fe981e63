"""The console's sign-in safety through its Flask app, without an API server: where a sign-in
may send the browser (never another site), server-side sessions (sign-out and expiry end a
copied cookie at once, on every replica), and the Secure cookie.

The session store here is the real `SessionStore` over a dict standing in for the API
server's Secrets; tests/e2e/test_console.py runs the same against the real API server.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest

from paramedic import kube
from paramedic.console import app as console_app
from paramedic.console import auth, sessions
from paramedic.console.auth import Keys
from paramedic.console.sessions import SessionStore
from paramedic.settings import Settings
from tests.console_support import csrf_of

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
SECRET = b"k" * 32


class FakeSecrets:
    """The API server's Secrets of one namespace, as the store uses them."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.gets = 0

    def create(self, res, body, namespace=None):
        assert res is kube.SECRETS and namespace == "paramedic"
        name = body["metadata"]["name"]
        if name in self.items:
            raise kube.Conflict(409, "exists", "AlreadyExists")
        self.items[name] = json.loads(json.dumps(body))
        return body

    def get_or_none(self, res, name, namespace=None):
        assert res is kube.SECRETS and namespace == "paramedic"
        self.gets += 1
        return self.items.get(name)

    def delete(self, res, name, namespace=None):
        assert res is kube.SECRETS and namespace == "paramedic"
        self.items.pop(name, None)

    def list(self, res, namespace=None, labels=None):
        assert res is kube.SECRETS and namespace == "paramedic"
        return [s for s in self.items.values()
                if all(s["metadata"].get("labels", {}).get(k) == v for k, v in (labels or {}).items())]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def jwt(**claims) -> str:
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def make_app(monkeypatch, backend: FakeSecrets, clock: Clock | None = None, lifetime: int = 3600,
             insecure: bool = False):
    """One console replica: its own Flask app and store, the shared Secrets (the cluster)."""
    keys = Keys.derive(SECRET)
    store = SessionStore(backend, "paramedic", keys.seal, keys.unseal, lifetime,  # type: ignore[arg-type]
                         clock=clock or Clock())
    monkeypatch.setattr(console_app, "identity", lambda client: "ana@example.com")
    # Pages list nothing: the API server is not what these tests are about.
    monkeypatch.setattr(console_app, "list_visible", lambda *a, **k: ([], [], []))
    settings = Settings(console_insecure_http=insecure, console_session_seconds=lifetime)
    # Loopback, never contacted: identity and lists are replaced above.
    base = kube.Connection(host="https://127.0.0.1:9", verify=False, token=lambda: None)
    app = console_app.create_app(settings, base, secret=SECRET, store=store)
    app.testing = True
    return app


def sign_in(app, token: str = "opaque-token", next_: str | None = None):
    web = app.test_client()
    form = web.get("/signin").get_data(as_text=True)
    url = "/signin" if next_ is None else "/signin?" + _query(next_)
    resp = web.post(url, data={"token": token, "csrf": csrf_of(form)})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return web, resp


def _query(next_: str) -> str:
    from urllib.parse import urlencode
    return urlencode({"next": next_})


# --- where a sign-in may send the browser -------------------------------------------------

OFF_SITE = [
    "//evil.example/", "///evil.example/", "////evil.example/", "/\\evil.example/", "\\\\evil.example/",
    "\\/evil.example/", "/\\/evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r/evil.example/",
    "/\t\t/evil.example", "/%09/evil.example/", "/%2F/evil.example/", "/%2f/evil.example/", "/%5C/evil.example/",
    "/%5c%5cevil.example/", "/%252F/evil.example/", "/%25252F%25252Fevil.example/", "/%0A/evil.example/",
    "/%0D%0A/evil.example/", "https://evil.example/", "http://evil.example/", "HTTPS://evil.example/",
    "https:evil.example", "https:/evil.example", "https:", "javascript:alert(1)", "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "//user@evil.example/", "/@evil.example", "https://incidents@evil.example/",
    " /incidents", "\t/incidents", "\n//evil.example", " //evil.example", "/incidents\n//evil.example",
    "\uff0f\uff0fevil.example", "/\uff0fevil.example", "/\u2215evil.example", "/\u2044evil.example",
    "/%E2%88%95evil.example", "/%EF%BC%8Fevil.example", "\u3000//evil.example", "/\x00/evil.example",
    "/%00/evil.example", "evil.example", "incidents", ".//evil.example", "/.//evil.example", "/..//evil.example",
    "/signin", "/signout", "/healthz", "/nothing-here", "//", "/%2F", "", "/" + "a" * 3000,
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_sign_in_never_sends_the_browser_off_site(monkeypatch, target):
    app = make_app(monkeypatch, FakeSecrets())
    _, resp = sign_in(app, next_=target)
    assert resp.headers["Location"] == "/incidents", repr(target)


@pytest.mark.parametrize("target", ["/incidents?state=open&severity=high", "/ns/team-a/incidents/inc-1",
                                    "/services", "/oncall", "/insights?range=7d", "/ns/team-a/incidents/inc-1/report.md",
                                    "/incidents?q=ana%40example.com"])
def test_a_sign_in_returns_to_the_console_page_asked_for(monkeypatch, target):
    app = make_app(monkeypatch, FakeSecrets())
    _, resp = sign_in(app, next_=target)
    assert resp.headers["Location"] == target


def test_the_path_guard_alone():
    assert auth.local_path("/incidents") and auth.local_path("/incidents?q=a%20b")
    for bad in ("//x", "/\\x", "/%2F/x", "/%09/x", "/%252F/x", "https://x", "/a@b", "\u00a0/x", "/%25252525252Fx"):
        assert not auth.local_path(bad), bad


# --- sessions: in the cluster, ended at once everywhere --------------------------------------

def cookie_of(resp) -> tuple[str, list[str]]:
    [header] = [v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("paramedic_console=")]
    parsed = SimpleCookie()
    parsed.load(header)
    return parsed["paramedic_console"].value, [p.strip().lower() for p in header.split(";")]


def test_the_cookie_holds_only_a_signed_session_id_and_is_secure_by_default(monkeypatch):
    backend = FakeSecrets()
    app = make_app(monkeypatch, backend)
    token = jwt(exp=int((NOW + timedelta(hours=1)).timestamp()), sub="ana")
    _, resp = sign_in(app, token)
    value, attrs = cookie_of(resp)
    assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs
    assert token not in value and token.split(".")[1] not in value
    [secret] = backend.items.values()
    assert secret["metadata"]["labels"] == {sessions.LABEL: "true"}
    assert token not in json.dumps(secret)  # sealed with the console's key
    # Plain HTTP only when the admin says so.
    _, resp = sign_in(make_app(monkeypatch, FakeSecrets(), insecure=True))
    assert "secure" not in cookie_of(resp)[1]


def test_sign_out_ends_a_copied_cookie_at_once_on_every_replica(monkeypatch):
    backend = FakeSecrets()  # the cluster, shared by two replicas
    one, two = make_app(monkeypatch, backend), make_app(monkeypatch, backend)
    web, resp = sign_in(one)
    value, _ = cookie_of(resp)
    thief = two.test_client()  # the copied cookie, presented to the other replica
    thief.set_cookie("paramedic_console", value)
    assert web.get("/incidents").status_code == 200
    assert thief.get("/incidents").status_code == 200
    gets = backend.gets
    web.get("/incidents")
    assert backend.gets == gets + 1  # the price of this: one GET of the session's Secret per page
    page = web.get("/incidents").get_data(as_text=True)
    assert web.post("/signout", data={"csrf": csrf_of(page)}).status_code == 302
    assert backend.items == {}
    assert thief.get("/incidents").status_code == 302
    assert thief.get("/incidents").headers["Location"].startswith("/signin")
    stale = one.test_client()
    stale.set_cookie("paramedic_console", value)
    assert stale.get("/incidents").status_code == 302


def test_a_session_ends_with_its_lifetime_or_its_token_whichever_is_first(monkeypatch):
    backend, clock = FakeSecrets(), Clock()
    app = make_app(monkeypatch, backend, clock, lifetime=3600)
    web, _ = sign_in(app, jwt(exp=int((NOW + timedelta(minutes=10)).timestamp())))
    assert web.get("/incidents").status_code == 200
    clock.now = NOW + timedelta(minutes=9, seconds=59)
    assert web.get("/incidents").status_code == 200
    clock.now = NOW + timedelta(minutes=10)
    assert web.get("/incidents").status_code == 302
    assert backend.items == {}  # an expired session met is deleted
    clock.now = NOW
    web, _ = sign_in(app, "opaque-token")  # no exp of its own: the configured lifetime
    clock.now = NOW + timedelta(seconds=3599)
    assert web.get("/incidents").status_code == 200
    clock.now = NOW + timedelta(seconds=3600)
    assert web.get("/incidents").status_code == 302


def test_a_forged_or_edited_session_secret_is_no_session():
    keys, other = Keys.derive(SECRET), Keys.derive(b"x" * 32)
    session = sessions.Session("tok", "ana", ("a",), NOW + timedelta(minutes=5))
    body = sessions.secret_body("sid", session, keys.seal)
    assert body["metadata"]["name"] == sessions.secret_name("sid") and "sid" not in body["metadata"]["name"]
    assert sessions.read_secret(body, keys.unseal, NOW) == session
    assert sessions.read_secret(body, other.unseal, NOW) is None  # sealed by another key
    assert sessions.read_secret(body, keys.unseal, NOW + timedelta(minutes=5)) is None
    # Moving the annotation does not lengthen a session: its end is sealed with the token.
    body["metadata"]["annotations"][sessions.EXPIRES_ANNOTATION] = "2099-01-01T00:00:00Z"
    assert sessions.read_secret(body, keys.unseal, NOW + timedelta(minutes=6)) is None
    assert sessions.read_secret({"data": {"session": "!!"}}, keys.unseal, NOW) is None
    assert sessions.read_secret(None, keys.unseal, NOW) is None


def test_token_expiry_reads_a_jwts_exp_and_nothing_else():
    exp = int((NOW + timedelta(minutes=10)).timestamp())
    assert sessions.token_expiry(jwt(exp=exp)) == datetime.fromtimestamp(exp, UTC)
    for token in ("opaque", jwt(sub="x"), jwt(exp="soon"), jwt(exp=True), "a.!!!.c", "a.b.c.d", jwt(exp=10 ** 20)):
        assert sessions.token_expiry(token) is None, token
    assert sessions.session_end(NOW, 3600, jwt(exp=exp)) == NOW + timedelta(minutes=10)
    assert sessions.session_end(NOW, 60, jwt(exp=exp)) == NOW + timedelta(seconds=60)
    assert sessions.session_end(NOW, 60, "opaque") == NOW + timedelta(seconds=60)


def test_expired_sessions_are_pruned_at_sign_in():
    backend, clock = FakeSecrets(), Clock()
    keys = Keys.derive(SECRET)
    store = SessionStore(backend, "paramedic", keys.seal, keys.unseal, 60, clock=clock)  # type: ignore[arg-type]
    old, _ = store.open("t1", "ana", [])
    clock.now = NOW + timedelta(seconds=30)
    kept, _ = store.open("t2", "bob", [])
    backend.items["unrelated"] = {"metadata": {"name": "unrelated", "labels": {}}}
    clock.now = NOW + timedelta(seconds=61)
    assert store.prune(force=True) == 1
    assert sessions.secret_name(old) not in backend.items and sessions.secret_name(kept) in backend.items
    assert "unrelated" in backend.items
    assert store.get(kept) is not None and store.get(old) is None


def test_a_store_the_console_may_not_use_is_a_clear_503(monkeypatch):
    class Refusing(FakeSecrets):
        def create(self, res, body, namespace=None):
            raise kube.ApiError(403, 'secrets is forbidden: User "system:serviceaccount:x:y" cannot create', "Forbidden")
    app = make_app(monkeypatch, Refusing())
    web = app.test_client()
    form = web.get("/signin").get_data(as_text=True)
    resp = web.post("/signin", data={"token": "t", "csrf": csrf_of(form)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503 and "could not create its session Secret in namespace paramedic" in html


def test_other_secrets_in_the_sessions_namespace_are_named_loudly_at_start(caplog):
    from paramedic.console.main import warn_of_strangers

    backend = FakeSecrets()
    keys = Keys.derive(SECRET)
    store = SessionStore(backend, "paramedic", keys.seal, keys.unseal, 60)  # type: ignore[arg-type]
    store.open("t1", "ana", [])
    with caplog.at_level("WARNING", logger="paramedic.console"):
        warn_of_strangers(store)
    assert store.strangers() == [] and not caplog.records
    backend.items["smtp"] = {"metadata": {"name": "smtp"}}
    backend.items["fake"] = {"metadata": {"name": "fake", "labels": {sessions.LABEL: "yes"}}}
    assert store.strangers() == ["fake", "smtp"]
    with caplog.at_level("WARNING", logger="paramedic.console"):
        warn_of_strangers(store)
    [record] = caplog.records
    assert record.levelname == "WARNING" and "SECURITY" in record.getMessage() and "fake, smtp" in record.getMessage()


def test_pages_show_cr_text_without_terminal_controls_or_bidi_overrides(monkeypatch):
    from markupsafe import Markup

    app = make_app(monkeypatch, FakeSecrets())
    page = app.jinja_env.from_string("{{ title }}|{{ mark }}|{{ n }}")
    html = page.render(title="pay\u202eed\x1b]52;c;aGk=\x07 <b>", mark=Markup("<em>kept</em>"), n=3)
    assert html == "payed &lt;b&gt;|<em>kept</em>|3"
