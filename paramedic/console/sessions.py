"""Server-side sessions: the cluster is the database.

A sign-in is one Secret in the console's sessions namespace (labelled, named after a hash of
a random session id), holding the person's bearer token sealed with the console's key together with
the session's end. The cookie carries only the session id (signed). Every request GETs the
Secret: sign-out deletes it, so a copied cookie stops working at once, on every replica.
A session ends at the configured lifetime or when its token expires, whichever comes first
(a JWT's `exp`, read without trusting it for anything else: the API server still checks
the token on every call). Expired Secrets are deleted when met and pruned at sign-ins.

The pure part (names, bodies, expiry, reading a Secret back) is separate from `SessionStore`,
the thin layer that reads and writes Secrets with the console's own ServiceAccount.

That namespace holds sessions and nothing else (never Paramedic's own, which holds the
receiver's tokens and the seal key): RBAC cannot narrow get/list on Secrets to some of them,
so the console may read every Secret there. It says so loudly when it finds others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from paramedic import kube
from paramedic.domain.resources import Resource, mapping
from paramedic.domain.timeutil import iso, parse_or_none, utcnow

log = logging.getLogger("paramedic.console")

LABEL = "paramedic.dev/console-session"
EXPIRES_ANNOTATION = "paramedic.dev/expires-at"
NAME_PREFIX = "paramedic-console-session-"
PRUNE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Session:
    token: str
    user: str
    namespaces: tuple[str, ...]
    expires: datetime


class SessionStoreError(RuntimeError):
    """The console cannot read or write its session Secrets (its own rights, not the person's)."""


# --- pure ------------------------------------------------------------------------------------

def new_id() -> str:
    return secrets.token_urlsafe(32)


def secret_name(session_id: str) -> str:
    """The Secret's name: a hash of the id, so whoever may list Secrets' names learns no cookie."""
    return NAME_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()[:40]


def token_expiry(token: str) -> datetime | None:
    """A JWT's `exp` claim, unverified (the API server verifies the token on every call: this only
    ends the session no later than the token). None for a token that is not a JWT or has no `exp`."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        return datetime.fromtimestamp(exp, UTC)
    except (ValueError, binascii.Error, OverflowError, OSError):
        return None


def session_end(now: datetime, lifetime_seconds: int, token: str) -> datetime:
    """The configured lifetime, or the token's own end if that comes first."""
    end = now + timedelta(seconds=lifetime_seconds)
    exp = token_expiry(token)
    return min(end, exp) if exp is not None else end


def secret_body(session_id: str, session: Session, seal: Callable[[str], str]) -> dict:
    """The Secret of one session. The end is sealed with the token (the annotation, for pruning,
    could be edited by whoever may write Secrets; the sealed copy cannot)."""
    sealed = seal(json.dumps({"token": session.token, "user": session.user,
                              "namespaces": list(session.namespaces), "expires": iso(session.expires)}))
    return {"metadata": {"name": secret_name(session_id), "labels": {LABEL: "true"},
                         "annotations": {EXPIRES_ANNOTATION: iso(session.expires)}},
            "type": "Opaque", "data": {"session": base64.b64encode(sealed.encode()).decode()}}


def read_secret(secret: dict | None, unseal: Callable[[str], str | None], now: datetime) -> Session | None:
    """The live session a Secret holds, or None (missing, not ours, unreadable or over)."""
    if not secret:
        return None
    try:
        sealed = base64.b64decode(mapping(secret.get("data")).get("session") or "", validate=True).decode()
    except (ValueError, binascii.Error):
        return None
    opened = unseal(sealed) if sealed else None
    if opened is None:
        return None
    try:
        fields = json.loads(opened)
    except ValueError:
        return None
    expires = parse_or_none(fields.get("expires")) if isinstance(fields, dict) else None
    token, user = (fields.get("token"), fields.get("user")) if isinstance(fields, dict) else (None, None)
    if expires is None or not isinstance(token, str) or not token or not isinstance(user, str) or expires <= now:
        return None
    names = fields.get("namespaces")
    namespaces = tuple(str(n) for n in names) if isinstance(names, list) else ()
    return Session(token=token, user=user, namespaces=namespaces, expires=expires)


def strangers(secrets_: list[dict]) -> list[str]:
    """Names of the Secrets that are not sessions (the console can read them: they belong elsewhere)."""
    return sorted(Resource(s).name for s in secrets_ if Resource(s).labels.get(LABEL) != "true")


def expired(secret: dict, now: datetime) -> bool:
    """For pruning: past its end by the annotation (an unreadable one counts as past)."""
    end = parse_or_none(Resource(secret).annotations.get(EXPIRES_ANNOTATION))
    return end is None or end <= now


# --- the store -------------------------------------------------------------------------------

class SessionStore:
    """Sessions as Secrets in `namespace`, read and written with the console's own credentials
    (never used for people's requests: those carry the person's token)."""

    def __init__(self, client: kube.KubeClient, namespace: str, seal: Callable[[str], str],
                 unseal: Callable[[str], str | None], lifetime_seconds: int,
                 clock: Callable[[], datetime] = utcnow):
        self.client = client
        self.namespace = namespace
        self._seal, self._unseal = seal, unseal
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._pruned = 0.0
        self._prune_lock = threading.Lock()

    def _failed(self, what: str, exc: kube.ApiError) -> SessionStoreError:
        return SessionStoreError(f"the console could not {what} its session Secret in namespace {self.namespace} "
                                 f"(its ServiceAccount needs get, create, list and delete on secrets there): "
                                 f"{exc.status} {exc.message}")

    def open(self, token: str, user: str, namespaces: list[str]) -> tuple[str, Session]:
        """A new session for a token the API server just accepted: (its id, the session)."""
        self.prune()
        session_id = new_id()
        session = Session(token=token, user=user, namespaces=tuple(namespaces),
                          expires=session_end(self._clock(), self.lifetime_seconds, token))
        try:
            self.client.create(kube.SECRETS, secret_body(session_id, session, self._seal), self.namespace)
        except kube.ApiError as exc:
            raise self._failed("create", exc) from exc
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session of this id; None once signed out or over (an over one is deleted)."""
        name = secret_name(session_id)
        try:
            secret = self.client.get_or_none(kube.SECRETS, name, self.namespace)
        except kube.ApiError as exc:
            raise self._failed("read", exc) from exc
        session = read_secret(secret, self._unseal, self._clock())
        if secret is not None and session is None:
            self.end(session_id)
        return session

    def end(self, session_id: str) -> None:
        """Sign-out: the Secret is deleted, so the id means nothing on any replica from now on."""
        try:
            self.client.delete(kube.SECRETS, secret_name(session_id), self.namespace)
        except kube.ApiError as exc:
            raise self._failed("delete", exc) from exc

    def strangers(self) -> list[str]:
        """The Secrets of the sessions namespace that are not sessions (checked at start-up)."""
        try:
            return strangers(self.client.list(kube.SECRETS, self.namespace))
        except kube.ApiError as exc:
            raise self._failed("list", exc) from exc

    def prune(self, force: bool = False) -> int:
        """Delete the sessions past their end (at most once a minute per process, unless forced)."""
        with self._prune_lock:
            if not force and time.monotonic() - self._pruned < PRUNE_EVERY_SECONDS and self._pruned:
                return 0
            self._pruned = time.monotonic()
        now = self._clock()
        try:
            stale = [s["metadata"]["name"] for s in self.client.list(kube.SECRETS, self.namespace,
                                                                     labels={LABEL: "true"}) if expired(s, now)]
            for name in stale:
                self.client.delete(kube.SECRETS, name, self.namespace)
        except kube.ApiError as exc:
            raise self._failed("prune", exc) from exc
        if stale:
            log.info("pruned %d expired console sessions", len(stale))
        return len(stale)
