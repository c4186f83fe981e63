"""Sign-in, the person's own API client, CSRF and the session cookie.

There is no user database: a person signs in with a Kubernetes bearer token (from the
sign-in form, kept sealed in a server-side session whose id alone is in the signed cookie
(console/sessions.py), or from an `Authorization: Bearer` header on each request, as an
OIDC proxy forwards it). Every read and write goes to the
API server with that token, so Kubernetes RBAC decides what the person sees and does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface

from paramedic import kube

SESSION_ID = "sid"
"""The cookie's only sign-in field: the id of the server-side session (console/sessions.py)."""
SESSION_SIGNIN = "s"
"""A random value the sign-in form's CSRF token is bound to (before there is a bearer token)."""


def load_key(path: str) -> bytes:
    """The console's secret key: from the file (shared by replicas), else random for this process."""
    if path:
        data = Path(path).read_bytes().strip()
        if len(data) < 32:
            raise ValueError(f"the console session key in {path} is shorter than 32 bytes")
        return data
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class Keys:
    """Keys derived from the one secret: cookie signing, token encryption, CSRF."""

    signing: bytes
    fernet: Fernet
    csrf: bytes

    @classmethod
    def derive(cls, secret: bytes) -> Keys:
        def sub(label: bytes) -> bytes:
            return hmac.new(secret, label, hashlib.sha256).digest()
        return cls(signing=sub(b"cookie"), fernet=Fernet(base64.urlsafe_b64encode(sub(b"token"))), csrf=sub(b"csrf"))

    def seal(self, token: str) -> str:
        return self.fernet.encrypt(token.encode()).decode()

    def unseal(self, sealed: str) -> str | None:
        try:
            return self.fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None

    def csrf_token(self, bearer: str) -> str:
        """Stateless CSRF token bound to the person's bearer token: a forged cross-site form
        cannot know it, whether the token comes from the cookie or from a proxy's header."""
        return hmac.new(self.csrf, bearer.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, bearer: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token(bearer), given)


def local_path(target: str) -> bool:
    """Whether a redirect target (`?next=`) is a plain path of this site: never another site in
    any spelling. Browsers read `//host`, `/\\host`, `\\\\host` and `/<tab>/host` as
    another host (they drop tabs and newlines and treat `\\` as `/`). So: printable ASCII only,
    no backslash, one leading slash, no scheme or host, no `@` in the path; and the path part
    the same again after decoding it (repeatedly), should anything on the way decode it.
    The caller also requires a route of the console."""
    if not isinstance(target, str) or not 0 < len(target) <= 2048 or not _plain_path(target):
        return False
    path = target.split("?", 1)[0].split("#", 1)[0]
    for _ in range(4):
        decoded = unquote(path)
        if decoded == path:
            return True
        if not _plain_path(decoded):
            return False
        path = decoded
    return False  # still changing after four decodings: not a path anyone wrote


def _plain_path(target: str) -> bool:
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in target) or "\\" in target:
        return False  # whitespace, controls, non-ASCII lookalike slashes; backslashes
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and "@" not in target.split("?", 1)[0].split("#", 1)[0]


def header_token(request: Request) -> str | None:
    """The bearer token of an `Authorization: Bearer` header, if any."""
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def user_client(base: kube.Connection, token: str, timeout: float) -> kube.KubeClient:
    """A client acting with the person's own token against the console's API server (address and
    CA from the console's kubeconfig or in-cluster config; never its own credentials)."""
    bearer = "Bearer " + token
    conn = kube.Connection(host=base.host, verify=base.verify, token=lambda: bearer)
    return kube.KubeClient(conn, timeout=timeout, max_connections=4)


def service_account_namespace(username: str) -> str | None:
    """`system:serviceaccount:<ns>:<name>` → `<ns>`: where a ServiceAccount most likely has rights."""
    parts = username.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return parts[2]
    return None


class SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie: Secure unless the admin serves plain HTTP
    (PARAMEDIC_CONSOLE_INSECURE_HTTP), and even then whenever the request came over TLS;
    HttpOnly and SameSite=Lax always (set in the app's config)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure
